"""What a checkpoint carries for inference: an imported official file predicts at its 16:9 size with the COCO
names and no extra flags; neo-eval states the precision AP was measured at, and takes ``precision=``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import lightning
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from neo.checkpoints.official import import_official
from neo.data.coco_categories import COCO_CLASS_NAMES
from neo.models.rtdetr import build_preset
from neo.training.run import build_module
from tests.conftest import train_overrides
from tests.official_checkpoints import REFERENCE, official_from_net, save_official
from tests.training.helpers import compose_train


def _compose(config: str, overrides: list[str]):
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config, overrides=overrides)


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference key lists not available")
def test_predict_on_an_imported_official_checkpoint_needs_no_flags(tmp_path: Path, capsys) -> None:
    from neo.cli.predict import run

    torch.manual_seed(0)  # a properly initialised R18 under the released v2 names (random tensors overflow to NaN)
    net = build_preset("rtdetr_r18", 80, {"net.pixel_mean": None, "net.pixel_std": None})[0]
    pth = save_official(tmp_path / "rtdetrv2_r18vd_120e_coco.pth", model=official_from_net(net, "v2"))
    ckpt = import_official(pth, tmp_path / "rtdetr_r18.ckpt").output
    image = tmp_path / "street.jpg"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8))
    before = ckpt.read_bytes()
    cfg = _compose("predict", [f"checkpoint={ckpt}", f"source={image}", f"output_dir={tmp_path / 'out'}",
                               "score_threshold=0.0", "device=cpu", f"paths.root_dir={tmp_path}"])
    assert run(cfg) == 0, capsys.readouterr().err[-3000:]
    result = json.loads((tmp_path / "out/predictions.json").read_text())
    assert result["canvas_size"] == [360, 640] and result["class_names"] == list(COCO_CLASS_NAMES)
    detections = result["images"][0]["detections"]
    assert len(detections) == 300 and result["images"][0]["width"] == 1280  # boxes in the image's own pixels
    assert all(d["category_name"] == COCO_CLASS_NAMES[d["label"]] for d in detections)
    assert {d["category_id"] for d in detections} <= set(range(1, 91))
    assert ckpt.read_bytes() == before


@pytest.fixture()
def bf16_checkpoint(synth_root: Path, tmp_path: Path) -> Path:
    """A tiny neo checkpoint of a run configured to validate in bf16-mixed (its data: the synthetic set)."""
    cfg = compose_train(train_overrides(synth_root, tmp_path, "model=tiny", "trainer.precision=bf16-mixed"))
    module = build_module(cfg)
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 3,
                "global_step": 12, "pytorch-lightning_version": lightning.__version__}, path)
    return path


def test_eval_states_the_precision_and_takes_precision(bf16_checkpoint: Path, tmp_path: Path, capsys) -> None:
    from neo.cli.eval import run

    for precision, note in (("32-true", "AP measured at precision 32-true; training validated at bf16-mixed"),
                            ("bf16-mixed", "AP measured at precision bf16-mixed (the precision training validated "
                                           "at)")):
        out = tmp_path / precision
        cfg = _compose("eval", [f"checkpoint={bf16_checkpoint}", f"output_dir={out}", "accelerator=cpu",
                                f"precision={precision}", f"paths.root_dir={tmp_path}"])
        assert run(cfg) == 0, capsys.readouterr().err[-3000:]
        printed = " ".join(capsys.readouterr().out.split())
        assert f"precision {precision})" in printed and note in printed
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["precision"] == precision and metrics["training_precision"] == "bf16-mixed"
        assert 0.0 <= metrics["metrics"]["AP"] <= 1.0
