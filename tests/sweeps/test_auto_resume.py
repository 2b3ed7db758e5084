"""A training process killed mid-epoch (SIGKILL: no handler runs) continues when the same command is re-run
with ckpt_path=auto: from the newest step checkpoint, same epoch and step, same run folder."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import torch

from tests.conftest import train_overrides
from tests.support.commands import run_cli, start_command
from tests.sweeps.helpers import output, read_json

STEPS_PER_EPOCH = 6  # 24 synthetic train images / batch 4


def _wait_for_step_checkpoint(process: subprocess.Popen, path: Path, timeout: float = 240) -> dict:
    """The first readable last.ckpt of epoch 0 with >= 2 optimizer steps (a mid-epoch state)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if path.is_file():
            try:
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - caught while being written: look again
                checkpoint = None
            if checkpoint and checkpoint["global_step"] >= 2:
                return checkpoint
        time.sleep(0.05)
    raise AssertionError(f"no step checkpoint appeared: {process.communicate()[0][-4000:]}")


def test_sigkill_mid_epoch_then_same_command_continues(synth_root: Path, tmp_path: Path) -> None:
    command = [*train_overrides(
        synth_root, tmp_path, "run_name=killed", "trainer.max_epochs=2", "trainer.limit_val_batches=1",
        "callbacks.last_checkpoint.every_n_train_steps=2", "callbacks.ema=null", "logger=csv", "ckpt_path=auto")]
    process = start_command("neo-train", *command, cwd=tmp_path)
    run = tmp_path / "outputs/runs/killed"
    saved = _wait_for_step_checkpoint(process, run / "checkpoints/last.ckpt")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert saved["epoch"] == 0 and saved["global_step"] < STEPS_PER_EPOCH  # killed in the middle of epoch 0
    assert not (run / "checkpoints/interrupted.ckpt").exists()  # SIGKILL: nothing could be saved on the way out

    resumed = run_cli("neo-train", *command, cwd=tmp_path)  # the same command again (in this process)
    assert resumed.returncode == 0, output(resumed)
    assert "resumed from" in resumed.stdout
    record = read_json(run / "summary.json")
    assert record["status"] == "finished"
    assert record["resumed_from"] == str(run / "checkpoints/last.ckpt")
    assert (record["start_epoch"], record["start_step"]) == (saved["epoch"], saved["global_step"])
    assert (record["epochs"], record["steps"]) == (2, 2 * STEPS_PER_EPOCH)  # the rest of epoch 0, then epoch 1
    assert sorted(p.name for p in (tmp_path / "outputs/runs").iterdir()) == ["killed"]  # no new run folder
    assert not (tmp_path / "outputs/sweeps").exists()
    assert sorted(p.name for p in (run / "csv").iterdir()) == ["version_0", "version_1"]  # one log per start
