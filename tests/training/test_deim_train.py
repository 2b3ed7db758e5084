"""`loss=deim` composes on RT-DETR and D-FINE presets and trains a few steps in-process: the criterion's
classification term is MAL (`train/loss_mal` logged, finite; no VFL) and the batches carry dense data."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback

from neo.training.run import train
from tests.conftest import train_overrides
from tests.training.helpers import compose_train


class BoxCounter(Callback):
    """Appends (image id, number of target boxes) of every training sample to ``path`` as JSON lines."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        with self.path.open("a") as f:
            for target in batch[1]:
                f.write(json.dumps([int(target["image_id"]), len(target["labels"])]) + "\n")


@pytest.mark.parametrize("model", ["tiny", "rtdetr_r18", "dfine_n"])
def test_loss_deim_composes_mal_and_dense_data_on_every_kind_of_preset(model: str):
    cfg = compose_train([f"model={model}", "loss=deim"])
    criterion = instantiate(cfg.model.criterion)
    assert criterion.classification == "mal" and (criterion.alpha, criterion.gamma) == (1.0, 1.5)
    assert cfg.data.dense.mosaic_prob == cfg.data.dense.mixup_prob == 0.5
    default = instantiate(compose_train([f"model={model}"]).model.criterion)
    assert default.classification == "vfl" and (default.alpha, default.gamma) == (0.75, 2.0)
    assert compose_train([f"model={model}"]).data.dense is None
    assert criterion.weights["loss_mal"] == default.weights["loss_vfl"]


def _annotation_counts(synth_root: Path) -> dict[int, int]:
    data = json.loads((synth_root / "annotations/instances_train.json").read_text())
    counts = {image["id"]: 0 for image in data["images"]}
    for ann in data["annotations"]:
        counts[ann["image_id"]] += 0 if ann.get("iscrowd") else 1
    return counts


@pytest.mark.parametrize("model", ["tiny", "dfine_n"])  # rtdetr_r18 trains the same way, 2x the time
def test_loss_deim_trains_a_few_steps(synth_root: Path, tmp_path: Path, model: str):
    boxes = tmp_path / "boxes.jsonl"
    cfg = compose_train(train_overrides(
        synth_root, tmp_path, f"model={model}", "loss=deim", f"run_name=deim-{model}", "trainer.max_epochs=1",
        "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1",
        "logger=csv", "sync_checkpoints=false", "callbacks.image_grid=null",
        f"+callbacks.boxes._target_={__name__}.BoxCounter", f"+callbacks.boxes.path={boxes}"))
    summary = train(cfg)
    assert summary.status == "finished", summary

    rows = list(csv.DictReader((next(Path(summary.run_dir, "csv").glob("version_*")) / "metrics.csv").open()))
    assert "train/loss_mal" in rows[0] and not any("vfl" in column for column in rows[0])
    values = [float(r["train/loss_mal"]) for r in rows if r.get("train/loss_mal")]
    assert len(values) == 3 and all(math.isfinite(v) and v > 0 for v in values)

    counts = _annotation_counts(synth_root)
    seen = [json.loads(line) for line in boxes.read_text().splitlines()]
    assert len(seen) == 3 * 4
    # mosaic / mixup: some samples hold more boxes than their own image has
    assert any(n > counts[image_id] for image_id, n in seen), seen
