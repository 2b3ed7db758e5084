"""ValidationResults: per-class AP, PR curves and the confusion matrix of every validation, kept for the best one.

After each validation (rank zero, sanity check excluded) the module's COCOeval gives
(:mod:`neo.evaluation.results`):
- TensorBoard: ``val/pr_curves`` and ``val/confusion_matrix`` images and ``val_per_class/AP/<class>``,
  ``val_per_class/AP50/<class>`` scalars at the current step;
- the run folder (``save_dir``, ``<run>/results`` by default), when this validation is the best so far
  (strictly higher ``monitor``, as ``best.ckpt`` is chosen): ``per_class.csv``/``.json``, ``pr_curves.png``,
  ``confusion_matrix.png``/``.json``. So the folder always describes the weights in ``best.ckpt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger


def tensorboard_writers(trainer: pl.Trainer) -> list[Any]:
    """SummaryWriters of every TensorBoard logger of the trainer."""
    return [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]


def is_new_best(pl_module: pl.LightningModule, monitor: str = "AP") -> bool:
    """True when the newest validation in ``metrics_history`` beats every earlier one on ``monitor``."""
    history = list(getattr(pl_module, "metrics_history", None) or [])
    if not history or monitor not in history[-1]:
        return False
    earlier = [m.get(monitor, float("-inf")) for m in history[:-1]]
    return not earlier or history[-1][monitor] > max(earlier)


class ValidationResults(Callback):
    """Args: save_dir: folder for the best validation's files (None: TensorBoard only);
    score_threshold/iou_threshold: detections counted in the confusion matrix and their matching IoU;
    monitor: the metric that decides the best validation (the best checkpoint's, ``AP``)."""

    def __init__(self, save_dir: str | Path | None = None, score_threshold: float = 0.3,
                 iou_threshold: float = 0.5, monitor: str = "AP") -> None:
        self.save_dir = Path(save_dir) if save_dir else None
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.monitor = monitor
        self.best_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        evaluator = getattr(pl_module, "evaluator", None)
        cocoeval = getattr(evaluator, "last_cocoeval", None)
        if cocoeval is None:
            return
        from neo.evaluation.results import evaluation_results, write_evaluation_results

        results = evaluation_results(cocoeval, self.score_threshold, self.iou_threshold)
        step = trainer.global_step
        for writer in tensorboard_writers(trainer):
            writer.add_image("val/pr_curves", results.pr_image, step, dataformats="HWC")
            writer.add_image("val/confusion_matrix", results.confusion_image, step, dataformats="HWC")
            for row in results.rows:
                if row.instances:
                    writer.add_scalar(f"val_per_class/AP/{row.name}", row.AP, step)
                    writer.add_scalar(f"val_per_class/AP50/{row.name}", row.AP50, step)
        if self.save_dir is not None and is_new_best(pl_module, self.monitor):
            self.best_epoch = trainer.current_epoch
            write_evaluation_results(results, self.save_dir, epoch=trainer.current_epoch, step=step,
                                     split="val", images=len(cocoeval.params.imgIds))
