"""ValidationImageGrid: predictions vs ground truth of the first validation batch, in TensorBoard and the run folder.

The grid (``neo.evaluation.draw.batch_comparison_grid``) goes to every TensorBoard logger as
``val/predictions``; the RTDETRModule keeps the first batch of each validation in ``val_sample_batch``.
It is logged on every ``every_n_epochs``-th validation (1: all of them), on every new best validation,
and for the last validation at the end of training even when a time limit stopped it early; a new best
is also written as ``<save_dir>/val_predictions.jpg`` (the pictures of the weights in ``best.ckpt``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from neo.files import atomic_path
from neo.training.validation_results import is_new_best, tensorboard_writers

GRID_JPG = "val_predictions.jpg"


class ValidationImageGrid(Callback):
    """Args: every_n_epochs: log every N-th validation (the best and the last always);
    score_threshold: hide predictions below it; max_images: rows in the grid;
    save_dir: folder for the best validation's grid as a JPEG (None: TensorBoard only)."""

    def __init__(self, every_n_epochs: int = 1, score_threshold: float = 0.3, max_images: int = 4,
                 save_dir: str | Path | None = None, monitor: str = "AP") -> None:
        self.every_n_epochs = max(1, every_n_epochs)
        self.score_threshold = score_threshold
        self.max_images = max_images
        self.save_dir = Path(save_dir) if save_dir else None
        self.monitor = monitor
        self._validations = 0
        self._pending_step: int | None = None  # step of a validation whose grid was not logged yet

    def _grid(self, pl_module: pl.LightningModule):
        sample = getattr(pl_module, "val_sample_batch", None)
        if sample is None:
            return None
        from neo.evaluation.draw import batch_comparison_grid

        images, predictions, targets = sample
        return batch_comparison_grid(
            images, targets, predictions, class_names=pl_module.hparams.get("class_names"),
            max_images=self.max_images, score_threshold=self.score_threshold,
        )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self._validations += 1
        best = is_new_best(pl_module, self.monitor)
        if not best and (self._validations - 1) % self.every_n_epochs != 0:
            self._pending_step = trainer.global_step
            return
        self._pending_step = None
        grid = self._grid(pl_module)
        if grid is None:
            return
        for writer in tensorboard_writers(trainer):
            writer.add_image("val/predictions", grid, trainer.global_step, dataformats="HWC")
        if best and self.save_dir is not None:
            with atomic_path(self.save_dir / GRID_JPG) as tmp:
                ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
                if ok:
                    tmp.write_bytes(encoded.tobytes())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The last validation's grid when the cadence skipped it (e.g. max_time stopped training early)."""
        if self._pending_step is None or not trainer.is_global_zero:
            return
        grid = self._grid(pl_module)
        if grid is not None:
            for writer in tensorboard_writers(trainer):
                writer.add_image("val/predictions", grid, self._pending_step, dataformats="HWC")
        self._pending_step = None
