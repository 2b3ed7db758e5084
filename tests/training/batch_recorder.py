"""Test callbacks: record what each training step saw, and crash a run at a chosen step."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback


class SimulatedCrash(RuntimeError):
    """Raised by :class:`CrashAtStep` (a preemption or a crash in the middle of an epoch)."""


class BatchRecorder(Callback):
    """Appends one JSON line per training step to ``path``: step, epoch, image ids, H, W and a sha256 of
    the uint8 pixels (so a different augmentation seed shows); at the end of fit saves the weights to
    ``weights``."""

    def __init__(self, path: str, weights: str) -> None:
        self.path, self.weights = Path(path), Path(weights)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        images, targets = batch
        record = {"step": trainer.global_step, "epoch": trainer.current_epoch, "batch_idx": batch_idx,
                  "ids": [int(t["image_id"]) for t in targets], "hw": list(images.shape[2:]),
                  "pixels": hashlib.sha256(images.cpu().contiguous().numpy().tobytes()).hexdigest()}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.save({k: v.detach().cpu() for k, v in pl_module.state_dict().items()}, self.weights)


class CrashAtStep(Callback):
    """Raises :class:`SimulatedCrash` when the optimizer step ``step`` is about to run."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if trainer.global_step == self.step:
            raise SimulatedCrash(f"simulated crash before step {self.step}")


def read_steps(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
