"""`pretrained=` in neo-train: official and imported checkpoints fine-tune on another class count (only the
class-dependent tensors re-initialised, by name) with the official input normalisation set automatically."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from neo.training.run import build_module
from tests.official_checkpoints import REFERENCE, official_state_dict, to_v2, v2_name
from tests.training.helpers import compose_train

IMAGENET = ["model.net.pixel_mean=[0.485,0.456,0.406]", "model.net.pixel_std=[0.229,0.224,0.225]"]
CLASS_TENSORS = {"decoder.enc_score_head.weight", "decoder.enc_score_head.bias",
                 "decoder.denoising_class_embed.weight"} | {
    f"decoder.dec_score_head.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference key lists not available")


def _module(tmp_path: Path, *overrides: str):
    cfg = compose_train([f"paths.root_dir={tmp_path}", "data.num_classes=3", "print_config=false", *overrides])
    return build_module(cfg)


def _assert_official_normalisation(module) -> None:
    assert torch.allclose(module.net.pixel_scale, torch.full((1, 3, 1, 1), 1 / 255)) and not module.net.pixel_shift.any()
    for model in (module.hparams["model"], module.hparams["run_config"]["model"]):  # what the run's checkpoints carry
        assert model["net"]["pixel_mean"] is None and model["net"]["pixel_std"] is None


@needs_reference
def test_finetune_from_official_v2_reinitialises_exactly_the_class_tensors(tmp_path, caplog, monkeypatch) -> None:
    """pretrained=<registry name> resolves from the (local-folder) bucket, like a machine without GitHub
    access whose bucket was filled by `neo-weights upload`."""
    monkeypatch.delenv("NEO_OFFLINE", raising=False)
    official = to_v2(official_state_dict("rtdetr_r18vd_v1", seed=4))
    seeded = tmp_path / "data/bucket/models/pretrained/rtdetr/rtdetrv2_r18vd_120e_coco_rerun_48.1.pth"
    seeded.parent.mkdir(parents=True)
    torch.save({"model": official_state_dict("rtdetr_r18vd_v1", seed=5), "ema": {"module": official}}, seeded)
    torch.manual_seed(0)
    fresh = build_module(compose_train([f"paths.root_dir={tmp_path}", "data.num_classes=3", "model=rtdetr_r18"]))
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="neo.training"):
        module = _module(tmp_path, "model=rtdetr_r18", "pretrained=rtdetr/rtdetrv2_r18vd_120e_coco",
                         f"storage.cache_dir={tmp_path / 'cache'}", "storage.offline=false", *IMAGENET)
    assert (tmp_path / "cache/models/pretrained/rtdetr" / seeded.name).is_file()
    _assert_official_normalisation(module)
    fresh_state = fresh.net.state_dict()
    for key, value in module.net.state_dict().items():
        if key in CLASS_TENSORS:  # the 3-class heads keep the model's own (seeded) initialisation
            assert value.shape[0] in (3, 4) and torch.equal(value, fresh_state[key]), key
        else:
            assert torch.equal(value, official[v2_name(key)]), key
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "re-initialised" in r.getMessage())
    assert "has 80 classes, the model 3: re-initialised 9 class-dependent tensors" in warning
    assert set(warning.split(": ")[-1].split(", ")) == CLASS_TENSORS
    assert any("pixel_mean/pixel_std set to none (/255 only" in r.getMessage() for r in caplog.records)


@needs_reference
def test_finetune_from_an_imported_neo_checkpoint(tmp_path) -> None:
    from neo.checkpoints.load import load_checkpoint_module
    from neo.checkpoints.official import import_official

    official = official_state_dict("rtdetr_r18vd_v1", seed=6)
    torch.save({"ema": {"module": official, "updates": 7}}, tmp_path / "r18.pth")
    result = import_official(tmp_path / "r18.pth", tmp_path / "r18.ckpt")
    assert result.preset == "rtdetr_r18" and result.report.source == "ema.module"
    module = _module(tmp_path, "model=rtdetr_r18", f"pretrained={tmp_path / 'r18.ckpt'}", *IMAGENET)
    _assert_official_normalisation(module)
    state = module.net.state_dict()
    assert all(torch.equal(state[k], official[k]) for k in official if k not in CLASS_TENSORS)
    assert state["decoder.enc_score_head.weight"].shape == (3, 256)
    evaluated = load_checkpoint_module(tmp_path / "r18.ckpt")  # neo-eval's loader takes the same file
    assert evaluated.net.num_classes == 80 and evaluated.hparams["class_names"][0] == "person"


def test_neo_checkpoint_normalisation_carries_over(tmp_path) -> None:
    """A neo checkpoint trained with mean/std keeps it when the fine-tuning config says otherwise."""
    import lightning

    source = _module(tmp_path, "model=tiny")  # tiny: ImageNet mean/std
    torch.save({"state_dict": source.state_dict(), "hyper_parameters": dict(source.hparams),
                "pytorch-lightning_version": lightning.__version__}, tmp_path / "tiny.ckpt")
    module = _module(tmp_path, "model=tiny", "model.net.pixel_mean=null", "model.net.pixel_std=null",
                     f"pretrained={tmp_path / 'tiny.ckpt'}")
    assert torch.equal(module.net.pixel_scale, source.net.pixel_scale)
    assert torch.equal(module.net.pixel_shift, source.net.pixel_shift)
    assert module.hparams["model"]["net"]["pixel_mean"] == [0.485, 0.456, 0.406]
    assert all(torch.equal(v, source.net.state_dict()[k]) for k, v in module.net.state_dict().items())


@needs_reference
def test_dsp_weights_into_a_bilinear_model_are_named_in_a_warning(tmp_path, caplog) -> None:
    """A dsp file's tensors fit a bilinear model; pretrained= loads them and says the model samples otherwise."""
    from neo.checkpoints.pretrained import load_detector_weights, read_detector_weights
    from neo.models.rtdetr import build_preset

    path = tmp_path / "rtdetrv2_r18vd_dsp_3x_coco.pth"
    torch.save({"model": official_state_dict("rtdetrv2_r18vd", seed=7)}, path)
    weights = read_detector_weights(path)
    for sampling, warned in (("bilinear", True), ("discrete", False)):
        caplog.clear()
        net = build_preset("rtdetr_r18", 80, {"net.decoder.sampling": sampling})[0]
        with caplog.at_level(logging.WARNING, logger="neo.checkpoints"):
            load_detector_weights(net, weights)
        messages = [r.getMessage() for r in caplog.records if "model.net.decoder.sampling=discrete" in r.getMessage()]
        assert bool(messages) is warned, sampling


def test_backbone_weights_file_is_read_through_the_checkpoint_reader(tmp_path) -> None:
    """model.net.backbone.pretrained=<file> of a PResNet: the file is read by neo.checkpoints.format (a truncated one
    is refused naming the key) and its weights reach the backbone, frozen norms included."""
    from neo.checkpoints.format import CheckpointError

    torch.manual_seed(1)
    source = _module(tmp_path, "model.net.backbone.freeze_norm=true").net.backbone
    weights = tmp_path / "presnet_tiny.pth"
    torch.save({"ema": {"module": {f"backbone.{k}": v for k, v in source.state_dict().items()}}}, weights)
    torch.manual_seed(2)
    module = _module(tmp_path, "model.net.backbone.freeze_norm=true", f"model.net.backbone.pretrained={weights}")
    loaded = module.net.backbone.state_dict()
    assert loaded.keys() == source.state_dict().keys()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
    assert module.hparams["model"]["net"]["backbone"]["pretrained"] == str(weights)  # the run records the file

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"model\.net\.backbone\.pretrained=.*truncated"):
        _module(tmp_path, f"model.net.backbone.pretrained={truncated}")
