"""SIGTERM (as a scheduler sends it) saves a checkpoint and exits cleanly naming it; ckpt_path=auto continues."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import torch

from tests.cli.test_cli_e2e import _tiny
from tests.support.commands import run_cli, start_command, tail


def test_sigterm_saves_interrupt_checkpoint_and_auto_resume_continues(synth_root: Path, tmp_path: Path) -> None:
    base = _tiny(synth_root, tmp_path, "run_name=sig", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                 "trainer.check_val_every_n_epoch=100", "logger=none", "callbacks.ema=null")
    process = start_command("neo-train", *base, "trainer.max_epochs=100", cwd=tmp_path)
    checkpoints = tmp_path / "outputs/runs/sig/checkpoints"
    deadline = time.monotonic() + 240
    while not (checkpoints / "last.ckpt").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.stdout.read()[-3000:]
    process.send_signal(signal.SIGTERM)  # to the main process only, as `kill PID` / a scheduler does
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output[-3000:]
    saved = checkpoints / "interrupted.ckpt"
    assert "neo-train: interrupted" in output and f"Last good state saved to {saved}" in output, output[-3000:]
    interrupted = torch.load(saved, weights_only=True)
    assert interrupted["global_step"] >= 2

    epochs = interrupted["epoch"] + 2
    # the same command with ckpt_path=auto, in this process (the signal above is what needs a real one)
    resumed = run_cli("neo-train", *base, f"trainer.max_epochs={epochs}", "ckpt_path=auto", cwd=tmp_path)
    assert resumed.returncode == 0, tail(resumed)
    assert "neo-train: finished" in resumed.stdout
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] > interrupted["global_step"]
