"""ValidationImageGrid: every N validations, log predictions vs ground truth of the first val batch.

The grid (``neo.evaluation.draw.batch_comparison_grid``) goes to every TensorBoard logger as
``val/predictions``; the RTDETRModule keeps the first batch of each validation in ``val_sample_batch``.
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger


class ValidationImageGrid(Callback):
    """Args: every_n_epochs: log on validations whose epoch is a multiple of this (and the last);
    score_threshold: hide predictions below it; max_images: rows in the grid."""

    def __init__(self, every_n_epochs: int = 5, score_threshold: float = 0.3, max_images: int = 4) -> None:
        self.every_n_epochs = max(1, every_n_epochs)
        self.score_threshold = score_threshold
        self.max_images = max_images

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if trainer.current_epoch % self.every_n_epochs != 0 and not last:
            return
        sample = getattr(pl_module, "val_sample_batch", None)
        writers = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if sample is None or not writers:
            return
        from neo.evaluation.draw import batch_comparison_grid

        images, predictions, targets = sample
        grid = batch_comparison_grid(
            images, targets, predictions, class_names=pl_module.hparams.get("class_names"),
            max_images=self.max_images, score_threshold=self.score_threshold,
        )
        for writer in writers:
            writer.add_image("val/predictions", grid, trainer.global_step, dataformats="HWC")
