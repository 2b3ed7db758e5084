"""Official checkpoint conversion: reference key lists -> neo presets, strict, spot-checked; class change."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neo.models.rtdetr import build_preset
from neo.models.rtdetr.convert import extract_state_dict, infer_preset, load_official

REFERENCE = Path("/work/shared/reference")
pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference key lists not available")


def official_state_dict(stem: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with exactly the official names and shapes of a reference key list."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for line in (REFERENCE / f"{stem}_state_dict_keys.txt").read_text().splitlines():
        key, shape = line.split("\t")
        dims = tuple(int(v) for v in shape.strip("()").split(",") if v.strip())
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(dims, generator=g) + 0.5
        elif key.endswith("num_points_scale"):
            out[key] = torch.full(dims, 0.25)  # 4 points per level
        else:
            out[key] = torch.randn(dims, generator=g)
    return out


@pytest.mark.parametrize("stem, preset", [("rtdetr_r18vd_v1", "rtdetr_r18"), ("rtdetrv2_r50vd", "rtdetr_r50")])
def test_official_checkpoint_loads_strictly_with_spot_checks(stem, preset):
    official = official_state_dict(stem)
    assert infer_preset(official) == preset
    net, _, _ = build_preset(preset, num_classes=80)
    report = load_official(net, {"model": {}, "ema": {"module": official, "updates": 10}})
    assert report.source == "ema.module" and report.reinitialised == []
    assert set(report.mapped) == set(net.state_dict())
    sd = net.state_dict()
    assert torch.equal(sd["backbone.conv1.conv1_1.conv.weight"], official["backbone.conv1.conv1_1.conv.weight"])
    assert torch.equal(net.encoder.encoder[0].layers[0].self_attn.in_proj_weight,
                       official["encoder.encoder.0.layers.0.self_attn.in_proj_weight"])
    assert torch.equal(net.decoder.dec_score_head[-1].weight,
                       official[f"decoder.dec_score_head.{net.decoder.num_layers - 1}.weight"])
    if stem.startswith("rtdetrv2"):
        assert torch.equal(net.decoder.enc_output[0].weight, official["decoder.enc_output.proj.weight"])
        assert set(report.dropped) == {"decoder.anchors", "decoder.valid_mask"} | {
            f"decoder.decoder.layers.{i}.cross_attn.num_points_scale" for i in range(6)}
    # the converted model runs at a 16:9 size the 640x640 buffers would not fit
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 180, 320, dtype=torch.uint8))
    assert out["pred_logits"].shape == (1, 300, 80)


def test_class_count_change_reinitialises_only_class_tensors():
    official = official_state_dict("rtdetr_r18vd_v1")
    torch.manual_seed(0)
    net, _, _ = build_preset("rtdetr_r18", num_classes=3)
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    report = load_official(net, {"model": official})
    expected = {"decoder.enc_score_head.weight", "decoder.enc_score_head.bias", "decoder.denoising_class_embed.weight"}
    expected |= {f"decoder.dec_score_head.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    assert set(report.reinitialised) == expected and report.num_classes == 80 and report.source == "model"
    for key, value in net.state_dict().items():
        assert torch.equal(value, fresh[key] if key in expected else official[key]), key


def test_unknown_keys_are_errors():
    official = official_state_dict("rtdetr_r18vd_v1")
    official["decoder.some_new_head.weight"] = torch.zeros(3)
    net, _, _ = build_preset("rtdetr_r18", num_classes=80)
    with pytest.raises(ValueError, match="unexpected decoder.some_new_head.weight"):
        load_official(net, official)
    with pytest.raises(ValueError, match="missing"):
        load_official(build_preset("rtdetr_r34", num_classes=80)[0], official_state_dict("rtdetr_r18vd_v1"))
    assert extract_state_dict(official)[1] == "state_dict"
