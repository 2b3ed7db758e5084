"""D-FINE presets: parameter counts equal to the official configurations, backbones from timm."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import torch

from neo.models.rtdetr import build_preset, load_preset_config

OFFICIAL = {  # all parameters at 80 classes (official D-FINE configs/dfine/dfine_hgnetv2_*_coco.yml)
    "dfine_n": 3_782_693,
    "dfine_s": 10_321_877,
    "dfine_m": 19_590_064,
    "dfine_l": 31_244_152,
    "dfine_x": 62_621_560,
}


def _build_meta(name: str, num_classes: int = 80):
    with torch.device("meta"):
        return build_preset(name, num_classes)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_parameter_counts_equal_official(name):
    net, _, _ = _build_meta(name)
    assert sum(p.numel() for p in net.parameters()) == OFFICIAL[name]


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_preset_file_states_its_official_count(name):
    text = (resources.files("conf") / "model" / f"{name}.yaml").read_text()
    stated = re.search(r"Parameters: ([\d,]+), equal to the official", text)
    assert stated and int(stated.group(1).replace(",", "")) == OFFICIAL[name]


def test_large_presets_freeze_the_stem_and_backbone_norms():
    net, _, _ = _build_meta("dfine_l")
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("backbone.model.stem.") or n.startswith("decoder.") for n in frozen)
    assert {n for n in frozen if n.startswith("decoder.")} == {"decoder.up", "decoder.reg_scale"}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.backbone.modules())
    small, _, _ = _build_meta("dfine_n")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in small.backbone.modules())
    assert all(p.requires_grad for n, p in small.named_parameters() if n.startswith("backbone."))


def test_n_uses_two_levels_and_others_three():
    assert list(load_preset_config("dfine_n").net.backbone.out_strides) == [16, 32]
    net, _, _ = _build_meta("dfine_s", num_classes=5)
    assert net.backbone.out_channels == [256, 512, 1024]
    assert net.decoder.dec_score_head[0].out_features == 5
