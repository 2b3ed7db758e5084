"""Official checkpoint conversion: reference key lists -> neo presets, strict, spot-checked; class change."""

from __future__ import annotations

import pytest
import torch

from neo.models.rtdetr import build_preset
from neo.models.rtdetr.convert import (
    detect_architecture,
    extract_state_dict,
    infer_preset,
    load_official,
)
from tests.official_checkpoints import REFERENCE, official_state_dict, preset_shapes, to_v2, v2_name

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference key lists not available")


@pytest.mark.parametrize("stem, preset", [("rtdetr_r18vd_v1", "rtdetr_r18"), ("rtdetr_r50vd_v1", "rtdetr_r50"),
                                          ("rtdetrv2_r18vd", "rtdetr_r18"), ("rtdetrv2_r50vd", "rtdetr_r50")])
def test_official_checkpoint_loads_strictly_with_spot_checks(stem, preset):
    official = official_state_dict(stem)
    arch = detect_architecture(official)
    assert (arch.preset, arch.version, arch.num_classes) == (preset, "v2" if "v2" in stem else "v1", 80)
    net, _, _ = build_preset(preset, num_classes=80)
    report = load_official(net, {"model": {}, "ema": {"module": official, "updates": 10}})
    assert report.source == "ema.module" and report.reinitialised == []
    assert set(report.mapped) == set(net.state_dict())  # strict: every neo tensor came from the file
    assert net.load_state_dict(net.state_dict(), strict=True)  # and the result is a plain strict fit
    last = net.decoder.num_layers - 1
    spot = {  # official key -> the neo module tensor it must land in
        "backbone.conv1.conv1_1.conv.weight": net.backbone.conv1.conv1_1.conv.weight,  # stem conv
        "encoder.input_proj.2.0.weight": net.encoder.input_proj[2][0].weight,  # stride-32 input projection
        "encoder.encoder.0.layers.0.self_attn.in_proj_weight": net.encoder.encoder[0].layers[0].self_attn.in_proj_weight,
        "encoder.encoder.0.layers.0.self_attn.out_proj.weight":  # AIFI attention output projection
            net.encoder.encoder[0].layers[0].self_attn.out_proj.weight,
        "encoder.encoder.0.layers.0.linear1.weight": net.encoder.encoder[0].layers[0].linear1.weight,
        f"decoder.dec_score_head.{last}.weight": net.decoder.dec_score_head[last].weight,  # class head
        "decoder.denoising_class_embed.weight": net.decoder.denoising_class_embed.weight,
        "decoder.decoder.layers.0.cross_attn.sampling_offsets.weight":
            net.decoder.decoder.layers[0].cross_attn.sampling_offsets.weight,
    }
    for key, tensor in spot.items():
        assert torch.equal(tensor, official[v2_name(key) if "v2" in stem else key]), key
    if "v2" in stem:
        assert torch.equal(net.decoder.enc_output[0].weight, official["decoder.enc_output.proj.weight"])
        assert torch.equal(net.decoder.enc_output[1].bias, official["decoder.enc_output.norm.bias"])
        assert torch.equal(net.encoder.input_proj[0][0].weight, official["encoder.input_proj.0.conv.weight"])
        assert torch.equal(net.encoder.input_proj[1][1].running_var, official["encoder.input_proj.1.norm.running_var"])
        assert len(report.renamed) == 4 + 3 * 6  # enc_output proj/norm weight+bias; 3 input projections x 6
        assert set(report.dropped) == {"decoder.anchors", "decoder.valid_mask"} | {
            f"decoder.decoder.layers.{i}.cross_attn.num_points_scale" for i in range(net.decoder.num_layers)}
        assert "640x640" in report.dropped["decoder.anchors"]
    else:
        assert report.dropped == {} and report.renamed == {}
    # the converted model runs at a 16:9 size the 640x640 buffers would not fit
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 180, 320, dtype=torch.uint8))
    assert out["pred_logits"].shape == (1, 300, 80)


@pytest.mark.parametrize("preset, layers", [("rtdetr_r18", 3), ("rtdetr_r34", 4), ("rtdetr_r50m", 6),
                                            ("rtdetr_r50", 6), ("rtdetr_r101", 6)])
def test_architecture_detected_for_every_preset_v1_and_v2(preset, layers):
    shapes = preset_shapes(preset)
    v1 = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    assert infer_preset(v1) == preset
    for state, version in ((v1, "v1"), (to_v2(v1), "v2")):
        arch = detect_architecture(state)
        assert (arch.preset, arch.version, arch.num_classes, arch.num_decoder_layers) == (preset, version, 80, layers)


def test_ema_preferred_unless_model_asked():
    ema, model = {"a": torch.zeros(1)}, {"a": torch.ones(1)}
    assert extract_state_dict({"model": model, "ema": {"module": ema, "updates": 3}}) == (ema, "ema.module")
    assert extract_state_dict({"model": model, "ema": {"module": ema}}, prefer="model") == (model, "model")
    assert extract_state_dict({"ema": {"module": ema}}, prefer="model") == (ema, "ema.module")
    with pytest.raises(ValueError, match="no state dict found"):
        extract_state_dict({"optimizer": {"lr": 1}})


def test_class_count_change_reinitialises_only_class_tensors():
    official = official_state_dict("rtdetr_r18vd_v1")
    torch.manual_seed(0)
    net, _, _ = build_preset("rtdetr_r18", num_classes=3)
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    report = load_official(net, {"model": official})
    expected = {"decoder.enc_score_head.weight", "decoder.enc_score_head.bias", "decoder.denoising_class_embed.weight"}
    expected |= {f"decoder.dec_score_head.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    assert set(report.reinitialised) == expected and report.num_classes == 80 and report.source == "model"
    assert report.target_num_classes == 3 and len(report.mapped) == len(fresh) - len(expected)
    for key, value in net.state_dict().items():
        assert torch.equal(value, fresh[key] if key in expected else official[key]), key
    summary = report.summary()
    assert all(f"re-initialised {k}: class count 80 -> 3" in summary for k in expected)


def test_unknown_keys_are_errors_and_the_right_preset_is_named():
    official = official_state_dict("rtdetr_r18vd_v1")
    official["decoder.some_new_head.weight"] = torch.zeros(3)
    net, _, _ = build_preset("rtdetr_r18", num_classes=80)
    with pytest.raises(ValueError, match=r"1 unexpected key \(decoder.some_new_head.weight\)"):
        load_official(net, official)
    with pytest.raises(ValueError, match=r"missing keys .*the checkpoint is rtdetr_r18 \(80 classes, 3 decoder "
                                         r"layers\): use model=rtdetr_r18"):
        load_official(build_preset("rtdetr_r34", num_classes=80)[0], official_state_dict("rtdetr_r18vd_v1"))
    assert extract_state_dict(official)[1] == "state_dict"
    with pytest.raises(ValueError, match="not an RT-DETR with a PResNet-vd"):
        detect_architecture({"backbone.stem.weight": torch.zeros(1)})
    tiny = {k: torch.empty(v, device="meta") for k, v in preset_shapes("tiny", 3).items()}
    with pytest.raises(ValueError, match=r"stem width 8 \(official: 32\)"):  # R18 layout, quarter width
        detect_architecture(tiny)
