"""InterruptCheckpoint's SIGUSR2 path in one process: noted at any time, acted on after an optimizer step.

The scheduler side (SLURM's time-limit signal, submitit's requeue, two DDP ranks) is proved by
tests/slurm/; here the same callback runs under a plain Lightning trainer with a stand-in previous handler.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from neo.training.callbacks import InterruptCheckpoint


class SignalAt(pl.Callback):
    """Sends SIGUSR2 to this process when batch ``batch_idx`` starts (mid-step, as a scheduler would)."""

    def __init__(self, batch_idx: int) -> None:
        self.batch_idx = batch_idx

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.batch_idx and trainer.current_epoch == 0:
            os.kill(os.getpid(), signal.SIGUSR2)


def fit(tmp_path: Path, signal_at: int, accumulate: int = 1) -> tuple[InterruptCheckpoint, pl.Trainer]:
    interrupt = InterruptCheckpoint(tmp_path / "checkpoints")
    trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=2, limit_train_batches=8, limit_val_batches=0,
                         accumulate_grad_batches=accumulate, callbacks=[interrupt, SignalAt(signal_at)],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", devices=1)
    with pytest.raises(SystemExit):
        trainer.fit(BoringModel())
    return interrupt, trainer


@pytest.fixture
def previous_handler():
    """A SIGUSR2 handler standing in for submitit's (it records its calls); the original is put back after."""
    calls: list[int] = []
    original = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    yield calls
    signal.signal(signal.SIGUSR2, original)


def test_sigusr2_saves_after_the_step_then_calls_the_previous_handler_once(tmp_path: Path,
                                                                          previous_handler: list[int]) -> None:
    handler_before = signal.getsignal(signal.SIGUSR2)
    interrupt, trainer = fit(tmp_path, signal_at=3)
    assert previous_handler == [signal.SIGUSR2]  # called once, after the checkpoint, not when the signal came
    assert interrupt.reason == "SIGUSR2" and interrupt.saved_path == tmp_path / "checkpoints/interrupted.ckpt"
    saved = torch.load(interrupt.saved_path, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 4 == trainer.global_step  # the step the signal interrupted was finished
    assert signal.getsignal(signal.SIGUSR2) is handler_before  # the previous handler is back


def test_sigusr2_inside_an_accumulation_window_stops_at_the_optimizer_step(tmp_path: Path,
                                                                         previous_handler: list[int]) -> None:
    interrupt, trainer = fit(tmp_path, signal_at=2, accumulate=4)  # batches 0-3 make optimizer step 1
    saved = torch.load(interrupt.saved_path, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 1 == trainer.global_step
    assert previous_handler == [signal.SIGUSR2]


def test_sigusr2_without_a_previous_handler_stops_with_the_checkpoint(tmp_path: Path) -> None:
    original = signal.signal(signal.SIGUSR2, signal.SIG_DFL)  # a run outside any scheduler: no handler
    try:
        interrupt, trainer = fit(tmp_path, signal_at=1)
    finally:
        signal.signal(signal.SIGUSR2, original)
    assert torch.load(interrupt.saved_path, map_location="cpu", weights_only=True)["global_step"] == 2
    assert signal.getsignal(signal.SIGUSR2) is original
