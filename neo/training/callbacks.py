"""Small Lightning callbacks neo adds: training speed, interrupt checkpoints, per-epoch data hook, model size.

(EMA lives in :mod:`neo.training.ema`, the validation image grid in :mod:`neo.training.image_grid`.)
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelSummary
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.model_summary import get_human_readable_count

log = logging.getLogger(__name__)


class TrainSpeedMonitor(Callback):
    """Logs training throughput and CUDA peak memory.

    ``train/images_per_s``: wall clock (data loading included, validation excluded) over the last
    ``window`` batches, logged every batch once known so every logging step carries it;
    ``train/epoch_images_per_s``: the same over the whole epoch; ``train/cuda_max_mem_gib`` on GPU.
    """

    def __init__(self, window: int = 10) -> None:
        self.window = max(1, window)
        self._t0: float | None = None
        self._images = 0
        self._batches = 0
        self._epoch_t0: float | None = None
        self._epoch_images = 0
        self.images_seen = 0
        self.train_seconds = 0.0
        self.last_images_per_s = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_t0, self._epoch_images = None, 0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        if self._epoch_t0 is None:
            self._epoch_t0 = now

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        n = int(batch[0].shape[0])
        self._images += n
        self._batches += 1
        self._epoch_images += n
        self.images_seen += n
        now = time.perf_counter()
        if self._batches >= self.window and self._t0 is not None:
            elapsed = now - self._t0
            self.train_seconds += elapsed
            self.last_images_per_s = self._images / max(elapsed, 1e-9)
            self._t0, self._images, self._batches = now, 0, 0
        metrics = {}
        if self.last_images_per_s > 0:
            metrics["train/images_per_s"] = self.last_images_per_s
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            metrics["train/cuda_max_mem_gib"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**30
        if metrics:
            pl_module.log_dict(metrics, prog_bar=False, on_step=True, on_epoch=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.perf_counter()
        if self._t0 is not None and self._batches:  # count the partial window, then stop the clock
            self.train_seconds += now - self._t0
        if self._epoch_t0 is not None and self._epoch_images:
            pl_module.log("train/epoch_images_per_s", self._epoch_images / max(now - self._epoch_t0, 1e-9),
                          on_step=False, on_epoch=True)
        self._t0, self._images, self._batches = None, 0, 0  # validation time is not training time

    @property
    def mean_images_per_s(self) -> float:
        """Images per second over all training batches so far (validation excluded)."""
        return self.images_seen / self.train_seconds if self.train_seconds > 0 else self.last_images_per_s


class InterruptCheckpoint(Callback):
    """Saves ``<dirpath>/<filename>.ckpt`` when fit stops on Ctrl-C, SIGTERM, SIGUSR2 or an error after training began.

    Weights that are no longer finite are not saved (the last regular checkpoint is the good state).
    ``saved_path`` and ``reason`` tell the CLI what happened. (Not Lightning's OnExceptionCheckpoint:
    with that callback present, ``fit(ckpt_path=None)`` silently resumes from its file; neo resumes
    only when asked, with ``ckpt_path=auto``.)

    SIGUSR2 is SLURM's "time limit soon" signal (``hydra/launcher=slurm``): while training, this callback
    replaces the process's SIGUSR2 handler (submitit's, which requeues the job and exits at once, in the
    middle of whatever runs) with one that only notes the request. After each optimizer step every rank
    shares its note (one all-reduce of one number under DDP), so the stop happens on all ranks at the same
    step whichever ranks received the signal (SLURM may signal only some tasks): every rank takes part in
    saving the checkpoint, then the original handler runs on every rank (submitit: rank 0 requeues the
    job, the others return) and the process exits. Without a previous handler the run just stops with
    the checkpoint, as Ctrl-C does.
    """

    def __init__(self, dirpath: str | Path, filename: str = "interrupted") -> None:
        if not filename:
            raise ValueError("callbacks.interrupt.filename must not be empty (e.g. 'interrupted')")
        self.ckpt_path = Path(dirpath) / f"{filename}.ckpt"
        self.saved_path: Path | None = None
        self.reason: str | None = None
        self._saving = False
        self._stop_signal: int | None = None
        self._previous_handler: Any = None
        self._handler_installed = False
        self._checked_step = -1

    # --- SIGUSR2: note it, stop every rank together at the next optimizer step -------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_signal, self._checked_step = None, trainer.global_step
        previous = signal.getsignal(signal.SIGUSR2)
        if previous is signal.SIG_IGN or threading.current_thread() is not threading.main_thread():
            return  # the user asked to ignore it (or signals cannot be set from this thread)
        self._previous_handler = previous
        signal.signal(signal.SIGUSR2, self._note_stop_request)
        self._handler_installed = True

    def _note_stop_request(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._handler_installed or trainer.global_step == self._checked_step:
            return  # inside a gradient-accumulation window: a checkpoint here would drop the partial gradients
        self._checked_step = trainer.global_step
        if not self._stop_requested_on_any_rank(trainer, pl_module):
            return
        self.reason = signal.Signals(self._stop_signal or signal.SIGUSR2).name
        self._save(trainer, pl_module)
        trainer.strategy.barrier("neo-interrupt-checkpoint")  # the file is complete before rank 0 requeues the job
        self._restore_handler()
        # A requeue sends SIGTERM to every rank; Lightning's SIGTERM handler would start a collective
        # (a broadcast) inside the handler while the ranks are already leaving: let it pass instead.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _ignore_while_stopping)
        log.warning("rank %d: %s, interrupt checkpoint written: stopping after step %d",
                    trainer.global_rank, self.reason, trainer.global_step)
        previous = self._previous_handler
        if callable(previous):
            previous(signal.SIGUSR2, None)  # submitit: rank 0 checkpoints the job, requeues it and exits
        raise SystemExit(-1)  # every other rank (and runs without a handler) stop here too

    def _stop_requested_on_any_rank(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        requested = torch.tensor([1 if self._stop_signal is not None else 0], device=pl_module.device)
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(requested, op=torch.distributed.ReduceOp.MAX)
        if requested.item() and self._stop_signal is None:
            self._stop_signal = int(signal.SIGUSR2)  # another rank received it
        return bool(requested.item())

    def _restore_handler(self) -> None:
        if self._handler_installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR2, self._previous_handler)
        self._handler_installed = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handler()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_handler()

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Keep the logging step exact across the resume of an interrupt checkpoint.

        Stopped before a batch finished, the checkpoint is one Lightning restores as "not on a batch end", and
        it then counts one more stepped batch than ran: the logged steps after a resume would skip one. The
        count is stored one lower so the resumed run logs the very next step.
        """
        if not self._saving or trainer.accumulate_grad_batches != 1:  # with accumulation Lightning adds nothing
            return
        progress = trainer.fit_loop.epoch_loop.batch_progress.total
        on_batch_end = progress.processed == progress.started and progress.completed == progress.processed - 1
        on_last = progress.ready == progress.started == progress.processed == progress.completed
        state = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
        if not on_batch_end and not on_last and state.get("_batches_that_stepped", 0) > 0:
            state["_batches_that_stepped"] -= 1

    # --- Ctrl-C, SIGTERM, errors ----------------------------------------------------------------------------

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_handler()
        if self.saved_path is not None and self._stop_signal is not None:
            return  # the SIGUSR2 stop already saved this step on every rank
        self.reason = type(exception).__name__
        if not trainer.state.fn or trainer.state.fn.value != "fit" or trainer.global_step == 0:
            return  # nothing trained yet: nothing worth saving
        self._save(trainer, pl_module)

    def _save(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in pl_module.parameters()):
            rank_zero_info("Weights are not finite: no interrupt checkpoint written; use the last checkpoint.")
            return
        self._saving = True
        try:
            trainer.save_checkpoint(self.ckpt_path)
        finally:
            self._saving = False
        self.saved_path = self.ckpt_path
        rank_zero_info(f"Saved an interrupt checkpoint at step {trainer.global_step}: {self.saved_path}")


def _ignore_while_stopping(signum: int, frame: Any) -> None:
    log.info("rank stopping after SIGUSR2: %s ignored", signal.Signals(signum).name)


class DataEpochHook(Callback):
    """Tells the DataModule which epoch starts, so it can switch heavy augmentations off near the end.

    Calls ``trainer.datamodule.<method>(epoch, max_epochs=trainer.max_epochs)`` if the DataModule has
    that method (NeoDataModule.set_epoch: heavy augmentation and multi-scale stop for the last
    ``data.no_aug_epochs`` of ``max_epochs``).
    """

    def __init__(self, method: str = "set_epoch") -> None:
        self.method = method

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = getattr(trainer, "datamodule", None)
        hook = getattr(dm, self.method, None) if dm is not None else None
        if callable(hook):
            max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
            hook(trainer.current_epoch, max_epochs=max_epochs)


class FitStartRecorder(Callback):
    """Remembers the epoch and optimizer step at which fit starts training, after any checkpoint restore.

    ``epoch``/``step`` stay None until training starts; on a resumed run they show where it continued.
    """

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.step: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch, self.step = trainer.current_epoch, trainer.global_step


class OneLineModelSummary(ModelSummary):
    """The model's size in one line at fit start instead of Lightning's table.

    Lightning's table lists the three top-level modules and a FLOPs column that reads 0 (neo sets no
    example input); what a user needs is the parameter count and size:
    ``model: 1.2 M parameters (1.2 M trainable), 4.8 MB``.
    """

    @staticmethod
    def summarize(summary_data: list, total_parameters: int, trainable_parameters: int, model_size: float,
                  total_training_modes: dict, total_flops: int, **summarize_kwargs: Any) -> None:
        rank_zero_info(f"model: {get_human_readable_count(total_parameters)} parameters "
                       f"({get_human_readable_count(trainable_parameters)} trainable), {model_size:.1f} MB")
