"""Official RT-DETR files as released (v1 and v2 names, R18 and R50) -> neo checkpoints whose model computes
exactly what the source model computes; the layout is detected and reported; import stays strict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neo.checkpoints.format import CheckpointError, read_neo, read_official
from neo.checkpoints.load import eval_size_of, load_checkpoint_module
from neo.checkpoints.official import import_official
from neo.models.rtdetr import build_preset
from tests.official_checkpoints import (
    REFERENCE,
    REFERENCE_LISTS,
    official_from_net,
    official_state_dict,
    reference_shapes,
    save_official,
)

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference key lists not available")
OFFICIAL_INPUT = {"net.pixel_mean": None, "net.pixel_std": None,  # official models take images / 255
                  "net.encoder.position_embedding": "official"}  # and build the x-major embedding


@pytest.mark.parametrize(("preset", "layout"), sorted(REFERENCE_LISTS))
def test_official_file_imports_and_computes_what_its_source_computes(preset: str, layout: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_preset(preset, num_classes=80, overrides=OFFICIAL_INPUT)[0].eval()
    official = official_from_net(source, layout)
    shapes = {k: tuple(v.shape) for k, v in official.items()}
    assert shapes == reference_shapes(REFERENCE_LISTS[(preset, layout)])  # the released names and shapes, exactly
    raw = {k: v + 1 if v.is_floating_point() else v for k, v in official.items()}  # "model" differs from "ema"
    pth = save_official(tmp_path / f"{preset}_{layout}.pth", model=raw, ema=official, last_epoch=71)

    result = import_official(pth, tmp_path / "neo.ckpt")
    assert result.architecture.version == layout and result.preset == preset
    assert result.report.source == "ema.module" and not result.report.reinitialised
    renamed = set(result.report.renamed)
    assert renamed == ({k for k in official if k.startswith(("encoder.input_proj.", "decoder.enc_output."))}
                       if layout == "v2" else set())

    module = load_checkpoint_module(result.output)
    assert module.loaded_weights == "ema" and eval_size_of(module) == (360, 640)
    images = torch.randint(0, 256, (2, 3, 96, 160), dtype=torch.uint8)
    with torch.no_grad():
        expected, got = source(images), module.net(images)
    for name in ("pred_logits", "pred_boxes"):
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5)
    # 96x160 (16:9): the checkpoint records the official embedding layout, which matters off-square
    assert module.hparams["model"]["net"]["encoder"]["position_embedding"] == "official"
    module.net.encoder.position_embedding = "consistent"
    with torch.no_grad():
        assert not torch.allclose(module.net(images)["pred_logits"], expected["pred_logits"], atol=1e-3)


def test_import_reports_the_layout_it_saw(tmp_path: Path) -> None:
    for stem, version in (("rtdetr_r18vd_v1", "v1"), ("rtdetrv2_r18vd", "v2")):
        pth = save_official(tmp_path / f"{stem}.pth", model=official_state_dict(stem))
        read = read_official(pth, key="import")
        assert (read.architecture.version, read.architecture.preset, read.picked) == (version, "rtdetr_r18", "model")


def test_import_is_strict_about_keys_it_cannot_place(tmp_path: Path) -> None:
    """A v2 file missing one input projection, or with a key neo has no place for, is refused by name."""
    official = official_state_dict("rtdetrv2_r18vd")
    del official["encoder.input_proj.1.norm.running_var"]
    official["encoder.input_proj.3.conv.weight"] = torch.zeros(256, 512, 1, 1)
    pth = save_official(tmp_path / "odd.pth", model=official)
    with pytest.raises(CheckpointError) as caught:
        import_official(pth, tmp_path / "odd.ckpt")
    text = str(caught.value)
    assert "\n" not in text and str(pth) in text and "v2 layout" in text
    assert "1 unexpected key (encoder.input_proj.3.0.weight)" in text
    assert "1 missing key (encoder.input_proj.1.1.running_var)" in text
    assert not (tmp_path / "odd.ckpt").exists()


def test_import_into_another_preset_names_the_right_one(tmp_path: Path) -> None:
    pth = save_official(tmp_path / "r18.pth", model=official_state_dict("rtdetrv2_r18vd"))
    with pytest.raises(CheckpointError, match=r"does not load into model=rtdetr_r34: .*use model=rtdetr_r18"):
        import_official(pth, tmp_path / "r34.ckpt", preset="rtdetr_r34")
    assert not (tmp_path / "r34.ckpt").exists()


def test_imported_checkpoint_carries_coco_names_size_and_data(tmp_path: Path) -> None:
    pth = save_official(tmp_path / "v2.pth", model=official_state_dict("rtdetrv2_r18vd"))
    checkpoint = read_neo(import_official(pth, tmp_path / "v2.ckpt").output)
    assert checkpoint.hparams["class_names"][:3] == ["person", "bicycle", "car"]
    assert checkpoint.hparams["label_to_category_id"][-1] == 90
    data = checkpoint.data_config
    assert data["eval_size"] == "640x360" and data["num_classes"] == 80
    assert data["_target_"] == "neo.data.datamodule.NeoDataModule" and data["root"] == "${paths.data_dir}/coco"
    assert checkpoint.imported["version"] == "v2" and checkpoint.imported["state"] == "model"


@pytest.mark.parametrize("points", [[1, 1, 1], [2, 2, 2], [3, 3, 3], [2, 3, 4]])
def test_sampling_point_variants_are_detected_and_import_strictly(points: list[int], tmp_path: Path) -> None:
    """sp1/sp2/sp3 (and per-level counts): the points come from the tensor shapes and the v2 scale buffer,
    the import is strict, the checkpoint records them and its model computes what the source computes."""
    torch.manual_seed(0)
    source = build_preset("rtdetr_r18", num_classes=80,
                          overrides={**OFFICIAL_INPUT, "net.decoder.num_points": points})[0].eval()
    pth = save_official(tmp_path / "sp.pth", model=official_from_net(source, "v2"))
    result = import_official(pth, tmp_path / "sp.ckpt")
    assert result.architecture.num_points == tuple(points) and not result.report.reinitialised
    module = load_checkpoint_module(result.output)
    assert module.hparams["model"]["net"]["decoder"]["num_points"] == points
    images = torch.randint(0, 256, (1, 3, 96, 160), dtype=torch.uint8)
    with torch.no_grad():
        expected, got = source(images), module.net(images)
    assert torch.equal(got["pred_logits"], expected["pred_logits"])
    assert torch.equal(got["pred_boxes"], expected["pred_boxes"])


def test_sampling_points_that_do_not_fit_the_model_name_the_setting(tmp_path: Path) -> None:
    """Loading an sp2 file into a 4-point model (e.g. neo-train pretrained=) names the override that fits."""
    from neo.models.rtdetr.convert import load_official

    with torch.device("meta"):
        sp2 = build_preset("rtdetr_r18", 80, {"net.decoder.num_points": [2, 2, 2]})[0]
    official = {k: torch.zeros(v.shape) for k, v in sp2.state_dict().items()}
    with pytest.raises(ValueError, match=r"sp2\): use model=rtdetr_r18 model\.net\.decoder\.num_points=\[2,2,2\]"):
        load_official(build_preset("rtdetr_r18", 80)[0], {"model": official})


def test_dsp_imports_only_when_stated_and_then_computes_what_its_source_computes(tmp_path: Path) -> None:
    """A dsp file has the tensors of a bilinear one: named *dsp* it is refused until the variant is stated;
    stated, the model samples discretely and equals the source (bilinear sampling would not)."""
    torch.manual_seed(0)
    source = build_preset("rtdetr_r18", num_classes=80,
                          overrides={**OFFICIAL_INPUT, "net.decoder.sampling": "discrete"})[0].eval()
    pth = save_official(tmp_path / "rtdetrv2_r18vd_dsp_3x_coco.pth", model=official_from_net(source, "v2"))
    with pytest.raises(CheckpointError, match=r"the name says dsp .*cannot show.*--variant dsp"):
        import_official(pth, tmp_path / "dsp.ckpt")
    assert not (tmp_path / "dsp.ckpt").exists()

    result = import_official(pth, tmp_path / "dsp.ckpt", variant="dsp")
    assert result.sampling == "discrete" and result.sampling_stated and "dsp" in result.variants
    module = load_checkpoint_module(result.output)
    assert module.hparams["model"]["net"]["decoder"]["sampling"] == "discrete"
    images = torch.randint(0, 256, (1, 3, 96, 160), dtype=torch.uint8)
    with torch.no_grad():
        expected, got = source(images), module.net(images)
        assert torch.equal(got["pred_logits"], expected["pred_logits"])
        assert torch.equal(got["pred_boxes"], expected["pred_boxes"])
        for layer in module.net.decoder.decoder.layers:
            layer.cross_attn.sampling = "bilinear"
        assert not torch.allclose(module.net(images)["pred_logits"], expected["pred_logits"], atol=1e-3)


def test_r50_with_frozen_norms_unfolded_equals_the_source_exactly(tmp_path: Path) -> None:
    """Official R50 computes conv -> FrozenBatchNorm; imported with the fold off, neo does the same: 0.0 difference.
    Folded (the default) the outputs move by float rounding only."""
    torch.manual_seed(0)
    source = build_preset("rtdetr_r50", num_classes=80,
                          overrides={**OFFICIAL_INPUT, "net.backbone.fold_frozen_norm": False})[0].eval()
    with torch.no_grad():  # frozen statistics away from identity, so folding changes the arithmetic
        for name, buffer in source.backbone.named_buffers():
            if name.endswith(("running_var", "running_mean", "weight", "bias")):
                buffer.copy_(torch.rand_like(buffer) + 0.5)
    pth = save_official(tmp_path / "rtdetrv2_r50vd_6x_coco_ema.pth", model=official_from_net(source, "v2"))
    result = import_official(pth, tmp_path / "r50.ckpt", fold_frozen_norm=False)
    assert "frozen-norm: unfolded" in result.variants
    module = load_checkpoint_module(result.output)
    assert module.hparams["model"]["net"]["backbone"]["fold_frozen_norm"] is False
    images = torch.randint(0, 256, (1, 3, 96, 160), dtype=torch.uint8)
    with torch.no_grad():
        expected, got = source(images), module.net(images)
        assert (got["pred_logits"] - expected["pred_logits"]).abs().max().item() == 0.0
        assert (got["pred_boxes"] - expected["pred_boxes"]).abs().max().item() == 0.0
        module.net.backbone.set_fold_frozen_norm(True)
        folded = module.net(images)
    assert not torch.equal(folded["pred_logits"], expected["pred_logits"])
    torch.testing.assert_close(folded["pred_logits"], expected["pred_logits"], rtol=1e-2, atol=1e-2)


def test_official_hgnetv2_l_imports_and_computes_what_its_source_computes(tmp_path: Path) -> None:
    """Official HGNetv2-L names (stem pad+conv Sequential, stages.<i>, aggregation_*_conv) map onto neo's timm
    backbone; the import is strict, picks the official preset (stem frozen, /255) and equals the source at 16:9."""
    torch.manual_seed(0)
    source = build_preset("rtdetr_hgnetv2_l", num_classes=80, overrides=OFFICIAL_INPUT)[0].eval()
    official = official_from_net(source, "v2")
    assert {"backbone.stem.stem2a.conv.1.weight", "backbone.stages.2.blocks.0.aggregation_squeeze_conv.conv.weight",
            "backbone.stages.3.blocks.0.aggregation_excitation_conv.bn.running_var"} <= set(official)
    pth = save_official(tmp_path / "rtdetrv2_hgnetv2_l_6x_coco_from_paddle.pth", model=official)
    result = import_official(pth, tmp_path / "l.ckpt")
    assert result.preset == "rtdetr_hgnetv2_l" and result.num_parameters == 32_925_036
    assert result.variants == ["hgnetv2-official", "position: official", "frozen-norm: unfolded"]
    assert len([k for k in result.report.renamed if k.startswith("backbone.")]) == sum(
        k.startswith("backbone.") for k in official)  # every backbone key renamed
    module = load_checkpoint_module(result.output)
    net_cfg = module.hparams["model"]["net"]
    assert net_cfg["pixel_mean"] is None and net_cfg["backbone"]["freeze_at"] == 0
    assert sum(p.numel() for p in module.net.parameters() if not p.requires_grad) == 24_928  # the stem convs
    images = torch.randint(0, 256, (1, 3, 96, 160), dtype=torch.uint8)
    with torch.no_grad():
        expected, got = source(images), module.net(images)
    assert torch.equal(got["pred_logits"], expected["pred_logits"])
    assert torch.equal(got["pred_boxes"], expected["pred_boxes"])


@pytest.mark.parametrize(("preset", "stem"), [("rtdetr_hgnetv2_x", 25_440), ("rtdetr_hgnetv2_h", 56_592)])
def test_official_hgnetv2_x_and_h_names_fit_their_presets(preset: str, stem: int) -> None:
    """X and H (shapes only, on the meta device): detected from the stem width, every official name placed."""
    from neo.models.rtdetr.convert import convert_state_dict, detect_architecture

    with torch.device("meta"):
        net = build_preset(preset, num_classes=80, overrides=OFFICIAL_INPUT)[0]
    official = {k: torch.full((12,), 0.25) if k.endswith("num_points_scale") else v  # 4 points x 3 levels
                for k, v in official_from_net(net, "v2").items()}
    arch = detect_architecture(official)
    assert (arch.preset, arch.backbone, arch.version, arch.num_decoder_layers) == (preset, "hgnetv2-official", "v2", 6)
    converted, _ = convert_state_dict(official)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert sum(p.numel() for p in net.parameters() if not p.requires_grad) == stem
