"""Scenarios 2 and 3: a job stopped by its time limit mid-epoch, and a job killed without warning.

Both train one long epoch (160 steps of one 320x180 image) with ``last.ckpt`` every 5 steps, what the
README asks of cluster users (``callbacks.last_checkpoint.every_n_train_steps``).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from tests.faults.conftest import assert_nothing_lost, partial_files
from tests.slurm.cluster import Cluster
from tests.slurm.helpers import (
    bring_time_limit_forward,
    completed,
    finish,
    job_ids,
    launcher,
    neo_train,
    rank_pids,
    restarts,
    run_dirs,
    submitit_log,
    summary,
    tensors_equal,
    tiny_run,
    wait_for,
    wait_for_requeue,
)

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(1800)]

STEPS = 480  # three epochs of long_epoch_root's 160 train images, batch 1 (one epoch at 640x360 ended in 29 s on a quiet machine, before the signal)


def one_long_epoch(root: Path, out: Path) -> list[str]:
    """One epoch of STEPS steps that lasts over a minute, so the time-limit signal (due within ~30 s of the
    limit being brought forward) lands inside it: at 320x180 the epoch took 18 s on a quiet AVX-512 machine."""
    run = tiny_run(root, out, "data.batch_size=1", "trainer.max_epochs=3", "trainer.limit_val_batches=1",
                   "callbacks.last_checkpoint.every_n_train_steps=5", "optim.lr=2e-4")
    return [("data.resolution=640x360" if o.startswith("data.resolution=") else o) for o in run]


def started_training(sweep: Path) -> Path | None:
    """The point folder once its first ``last.ckpt`` (step 5) is written."""
    found = list(sweep.glob("*/checkpoints/last.ckpt"))
    return found[0].parent.parent if found else None


def final_weights(point: Path) -> dict:
    return torch.load(point / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_time_limit_mid_epoch_requeues_and_ends_with_the_uninterrupted_weights(slurm: Cluster, long_epoch_root: Path,
                                                                               tmp_path: Path) -> None:
    stopped_dir, reference_dir = tmp_path / "stopped", tmp_path / "reference"
    stopped_dir.mkdir()
    reference_dir.mkdir()
    stopped = neo_train(slurm, stopped_dir, *launcher(timeout_min=30, signal_delay_s=120),
                        *one_long_epoch(long_epoch_root, stopped_dir))
    reference = neo_train(slurm, reference_dir, *launcher(timeout_min=30, signal_delay_s=120),
                          *one_long_epoch(long_epoch_root, reference_dir))
    sweep = stopped_dir / "outputs/sweeps/cpu_demo"
    point = wait_for(lambda: started_training(sweep), 600, "the first last.ckpt (step 5)")
    (job,) = job_ids(sweep)
    before = restarts(slurm, job)
    bring_time_limit_forward(slurm, job)  # the limit now ends this job mid-epoch

    interrupted = point / "checkpoints/interrupted.ckpt"
    wait_for_requeue(slurm, job, before, sweep, timeout_s=240)
    slurm.run("scontrol", "update", f"JobId={job}", "TimeLimit=30")  # the requeued run gets a full limit again
    stopped_step = torch.load(interrupted, map_location="cpu", weights_only=True)["global_step"]
    assert 5 <= stopped_step < STEPS  # the signal landed inside the one epoch

    code, out = finish(stopped, stopped_dir, timeout_s=1200)
    assert code == 0, out[-6000:] + submitit_log(sweep, job)
    log = submitit_log(sweep, job)
    assert "Caught signal SIGUSR2" in log and f"Requeued job {job}" in log
    completed(slurm, job)
    record = summary(point)
    assert record["status"] == "finished" and record["steps"] == STEPS, record
    assert Path(record["resumed_from"]) == interrupted and record["start_step"] == stopped_step
    assert run_dirs(sweep) == [point]  # the requeued job continued in the same folder

    code, out = finish(reference, reference_dir, timeout_s=1200)
    assert code == 0, out[-6000:]
    (reference_point,) = run_dirs(reference_dir / "outputs/sweeps/cpu_demo")
    assert summary(reference_point)["steps"] == STEPS and summary(reference_point).get("resumed_from") is None
    assert tensors_equal(final_weights(point), final_weights(reference_point)) == []

    assert_nothing_lost(checkpoints=(point / "checkpoints", reference_point / "checkpoints"))
    assert partial_files(sweep) == []


def test_job_killed_without_warning_continues_from_last_ckpt_when_resubmitted(slurm: Cluster, long_epoch_root: Path,
                                                                             tmp_path: Path) -> None:
    """SIGKILL straight to the job's task, as the kernel's OOM killer or a node's memory limit does.

    (``scancel --signal=KILL`` is no test of this: SLURM turns it into a cancel, which sends SIGTERM first
    and so writes ``interrupted.ckpt``.) Without SLURM accounting (this cluster has no slurmdbd) submitit
    cannot see that the job failed and the launcher keeps waiting, so the user stops it with Ctrl-C;
    then they type the same command again.
    """
    command = [*launcher(timeout_min=30, signal_delay_s=120), *one_long_epoch(long_epoch_root, tmp_path)]
    first = neo_train(slurm, tmp_path, *command)
    sweep = tmp_path / "outputs/sweeps/cpu_demo"
    point = wait_for(lambda: started_training(sweep), 600, "the first last.ckpt (step 5)")
    (job,) = job_ids(sweep)
    (pid,) = wait_for(lambda: rank_pids(slurm, job), 60, "the job's task").values()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: slurm.job_state(job) == "FAILED", 120, "SLURM to record the job as failed")
    first.send_signal(signal.SIGINT)  # Ctrl-C on the waiting launcher
    code, out = finish(first, tmp_path, timeout_s=120)
    assert code != 0, out[-6000:]
    assert not (point / "checkpoints/interrupted.ckpt").exists()  # no handler ran: nothing saved on the way out
    killed_at = torch.load(point / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert killed_at >= 5 and killed_at % 5 == 0

    code, out = finish(neo_train(slurm, tmp_path, *command), tmp_path, timeout_s=1200)  # the same command again
    assert code == 0, out[-6000:]
    assert run_dirs(sweep) == [point]
    record = summary(point)
    assert record["status"] == "finished" and record["steps"] == STEPS, record
    assert Path(record["resumed_from"]) == point / "checkpoints/last.ckpt" and record["start_step"] == killed_at
    assert_nothing_lost(checkpoints=(point / "checkpoints",))
    assert partial_files(sweep) == []
