"""Official D-FINE files (Peterande/D-FINE layout) -> neo checkpoints that compute what their source computes.

The official names are written here from the layout neo knows (not from official code): the HGNetv2 backbone
under `backbone.stem` / `backbone.stages.<i>` (timm's module names, neo's `backbone.model.stages_<i>`), the LQE
heads as `reg_conf.layers.{0,1}`, the up / reg_scale parameters stored twice, and the buffers the official
model keeps (640x640 anchors and valid mask, points-per-level scales).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from neo.checkpoints.format import CheckpointError, read_official
from neo.checkpoints.load import load_checkpoint_module
from neo.checkpoints.official import import_official
from neo.models.rtdetr import build_preset
from tests.official_checkpoints import save_official

OFFICIAL_INPUT = {"net.encoder.position_embedding": "official"}  # D-FINE presets already take images / 255
STRIDES = {"dfine_n": (16, 32)}


def official_name(key: str) -> str:
    key = re.sub(r"^backbone\.model\.stem\.", "backbone.stem.", key)
    key = re.sub(r"^backbone\.model\.stages_(\d+)\.", r"backbone.stages.\1.", key)
    key = re.sub(r"(lqe_layers\.\d+)\.mlp\.0\.", r"\1.reg_conf.layers.0.", key)
    return re.sub(r"(lqe_layers\.\d+)\.mlp\.2\.", r"\1.reg_conf.layers.1.", key)


def official_from_net(net: torch.nn.Module, preset: str) -> dict[str, torch.Tensor]:
    """A neo D-FINE's weights under the official D-FINE names, with the buffers the official model stores."""
    out = {official_name(k): v.detach().clone() for k, v in net.state_dict().items()}
    out["decoder.decoder.up"] = out["decoder.up"].clone()
    out["decoder.decoder.reg_scale"] = out["decoder.reg_scale"].clone()
    anchors = sum((640 // s) ** 2 for s in STRIDES.get(preset, (8, 16, 32)))
    out["decoder.anchors"] = torch.randn(1, anchors, 4)
    out["decoder.valid_mask"] = torch.ones(1, anchors, 1, dtype=torch.bool)
    for name, buffer in net.named_buffers():
        if name.endswith("num_points_scale"):
            out[name] = buffer.clone()
    return out


@pytest.mark.parametrize("preset", ["dfine_n", "dfine_l"])
def test_official_dfine_file_imports_and_computes_what_its_source_computes(preset: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_preset(preset, num_classes=80, overrides=OFFICIAL_INPUT)[0].eval()
    with torch.no_grad():  # non-trivial heads: fresh D-FINE heads predict flat distributions and zero LQE terms
        for head in source.decoder.dec_bbox_head:
            head.layers[-1].weight.normal_(0, 0.05)
        for lqe in source.decoder.decoder.lqe_layers:
            lqe.mlp[-1].weight.normal_(0, 0.05)
    official = official_from_net(source, preset)
    raw = {k: v + 1 if v.is_floating_point() else v for k, v in official.items()}  # "model" differs from "ema"
    pth = save_official(tmp_path / f"{preset}.pth", model=raw, ema=official, last_epoch=79)

    result = import_official(pth, tmp_path / "neo.ckpt")
    assert (result.preset, result.architecture.version, result.architecture.num_classes) == (preset, "dfine", 80)
    assert result.report.source == "ema.module" and not result.report.reinitialised
    assert result.num_parameters == sum(p.numel() for p in source.parameters())
    assert set(result.report.renamed) == {k for k in official if k.startswith(("backbone.", "decoder.decoder.lqe"))}
    dropped = {k for k in official if re.match(r"decoder\.(anchors|valid_mask|decoder\.(up|reg_scale))$", k)
               or k.endswith("num_points_scale")}
    assert set(result.report.dropped) == dropped

    module = load_checkpoint_module(result.output)
    assert module.loaded_weights == "ema"
    images = torch.randint(0, 256, (2, 3, 96, 160), dtype=torch.uint8)
    with torch.no_grad():
        expected, got = source(images), module.net(images)
    for name in ("pred_logits", "pred_boxes"):
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5)
    assert module.hparams["model"]["net"]["encoder"]["position_embedding"] == "official"


@pytest.mark.parametrize("preset", ["dfine_n", "dfine_s", "dfine_m", "dfine_l", "dfine_x"])
def test_dfine_layout_and_preset_are_detected(preset: str, tmp_path: Path) -> None:
    with torch.device("meta"):
        net = build_preset(preset, num_classes=80)[0]
    shapes = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in official_from_net(net, preset).items()
              if k.startswith(("backbone.model.stem.", "backbone.stem.", "encoder.input_proj.")) or "score_head" in k
              or "lqe" in k}
    read = read_official(save_official(tmp_path / "w.pth", model=shapes), key="import")
    assert (read.architecture.preset, read.architecture.version, read.picked) == (preset, "dfine", "model")


def test_dfine_import_is_strict_about_keys_it_cannot_place(tmp_path: Path) -> None:
    torch.manual_seed(0)
    official = official_from_net(build_preset("dfine_n", num_classes=80)[0], "dfine_n")
    del official["decoder.decoder.lqe_layers.1.reg_conf.layers.1.bias"]
    official["decoder.decoder.lqe_layers.1.reg_conf.layers.2.bias"] = torch.zeros(1)
    pth = save_official(tmp_path / "odd.pth", model=official)
    with pytest.raises(CheckpointError) as caught:
        import_official(pth, tmp_path / "odd.ckpt")
    text = str(caught.value)
    assert "dfine layout" in text and "lqe_layers.1.reg_conf.layers.2.bias" in text
    assert "decoder.decoder.lqe_layers.1.mlp.2.bias" in text
    assert not (tmp_path / "odd.ckpt").exists()
