"""Presets: exact official parameter counts, official state-dict names/shapes, timm backbones."""

from __future__ import annotations

import re

import pytest
import torch

from neo.models.rtdetr import PRESETS, build_preset, load_preset_config
from tests.official_checkpoints import REFERENCE, reference_shapes

OFFICIAL = {  # preset: (trainable, all parameters) at 80 classes
    "rtdetr_r18": (20_184_464, 20_184_464),
    "rtdetr_r34": (31_441_668, 31_441_668),
    "rtdetr_r50m": (36_565_260, 36_593_772),
    "rtdetr_r50": (42_862_860, 42_891_372),
    "rtdetr_r101": (76_527_756, 76_556_268),
    # official HGNetv2 presets: the stem's conv weights are frozen (its norms are frozen buffers)
    "rtdetr_hgnetv2_l": (32_900_108, 32_925_036),
    "rtdetr_hgnetv2_x": (67_348_748, 67_374_188),
    "rtdetr_hgnetv2_h": (125_527_756, 125_584_348),
}


def _build_meta(name: str, num_classes: int = 80, overrides=None):
    with torch.device("meta"):
        return build_preset(name, num_classes, overrides)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_parameter_counts_equal_official(name):
    net, _, _ = _build_meta(name)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    assert (trainable, total) == OFFICIAL[name]


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference key lists not available")
@pytest.mark.parametrize(
    "name, stem",
    [("rtdetr_r18", "rtdetr_r18vd_v1"), ("rtdetr_r50", "rtdetr_r50vd_v1"), ("rtdetr_r50", "rtdetrv2_r50vd")],
)
def test_state_dict_names_and_shapes_match_official(name, stem):
    net, _, _ = _build_meta(name)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    ref = reference_shapes(stem)
    if stem.startswith("rtdetrv2"):  # v2: size-bound buffers, derived buffer, renamed enc_output and input_proj
        ref = {k: v for k, v in ref.items() if not k.endswith(("anchors", "valid_mask", "num_points_scale"))}
        ref = {
            re.sub(r"^(encoder\.input_proj\.\d+)\.conv\.", r"\1.0.",
                   re.sub(r"^(encoder\.input_proj\.\d+)\.norm\.", r"\1.1.",
                          k.replace("enc_output.proj.", "enc_output.0.").replace("enc_output.norm.", "enc_output.1."))): v
            for k, v in ref.items()
        }
    assert set(ref) - set(ours) == set()
    assert set(ours) - set(ref) == set()
    assert {k: v for k, v in ours.items() if ref[k] != v} == {}


def test_frozen_parts_follow_official_presets():
    r50, _, _ = _build_meta("rtdetr_r50")
    frozen = {n for n, p in r50.named_parameters() if not p.requires_grad}
    assert frozen == {f"backbone.conv1.conv1_{i}.conv.weight" for i in (1, 2, 3)}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in r50.backbone.modules())
    r18, _, _ = _build_meta("rtdetr_r18")
    assert all(p.requires_grad for p in r18.parameters())
    hgnet, _, _ = _build_meta("rtdetr_hgnetv2_l")
    frozen = {n for n, p in hgnet.named_parameters() if not p.requires_grad}
    assert frozen == {f"backbone.model.stem.{s}.conv.weight" for s in ("stem1", "stem2a", "stem2b", "stem3", "stem4")}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in hgnet.backbone.modules())
    assert load_preset_config("rtdetr_hgnetv2_l").net.pixel_mean is None  # official input: /255 only


def test_every_preset_resolves_with_num_classes():
    for name in PRESETS:
        cfg = load_preset_config(name, num_classes=7)
        assert cfg.net.num_classes == cfg.criterion.num_classes == cfg.postprocessor.num_classes == 7
        assert cfg.net.backbone.pretrained is None


@pytest.mark.parametrize("name, channels", [("hgnetv2_l", [512, 1024, 2048])])
def test_timm_preset_reads_channels_from_timm(name, channels):
    net, _, _ = _build_meta(name, num_classes=5)
    assert net.backbone.out_channels == channels
    assert net.encoder.in_channels == channels
    assert net.decoder.dec_score_head[0].out_features == 5
    assert list(load_preset_config(name).net.pixel_mean) == [0.485, 0.456, 0.406]  # timm ImageNet weights


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="rtdetr_r50"):
        load_preset_config("rtdetr_r500")
