"""Scenario 4: two SLURM tasks = two DDP ranks (CPU, gloo). SIGUSR2 stops both, whichever ranks receive it.

One job is stopped three times and continues after each requeue: by its time limit (SLURM signals every
task), by SIGUSR2 to rank 0 only, then to rank 1 only. Each time both ranks write the same step's
interrupt checkpoint and leave on their own, well before SLURM's KillWait (120 s in the test cluster)
would kill a rank that hangs.
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
    alive,
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
    tiny_run,
    wait_for,
    wait_for_requeue,
)

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(2400)]

STEPS = 240  # 3 epochs of long_epoch_root's 160 train images, shared by 2 ranks at batch 1
EXIT_S = 90  # both ranks must be gone this long after the signal (SLURM's KillWait is 120 s)


def long_ddp_run(root: Path, out: Path) -> list[str]:
    """STEPS steps at 640x360 that outlast three stops: at 320x180 in 2 epochs a quiet machine finished the
    whole run (~25 s of training) before the second signal could reach it, and the test waited for a
    requeue that never came."""
    run = tiny_run(root, out, "trainer=ddp_cpu", "data.batch_size=1", "trainer.max_epochs=3",
                   "trainer.limit_val_batches=1", "trainer.check_val_every_n_epoch=3",
                   "callbacks.last_checkpoint.every_n_train_steps=5")
    return [("data.resolution=640x360" if o.startswith("data.resolution=") else o) for o in run]


def step_of(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except (OSError, RuntimeError, EOFError, KeyError):
        return -1  # not there yet, or being written


def training_past(point: Path, step: int, cluster: Cluster, job: str) -> dict[int, int]:
    """The running ranks once the run has written a ``last.ckpt`` past ``step``."""
    if step_of(point / "checkpoints/last.ckpt") <= step:
        return {}
    pids = rank_pids(cluster, job)
    return pids if len(pids) == 2 else {}


def stopped_on_every_rank(cluster: Cluster, job: str, sweep: Path, point: Path, pids: dict[int, int],
                          after_step: int, restarts_before: int) -> int:
    """Both ranks exit by themselves, the job is requeued, both logged the same stop step; that step."""
    wait_for(lambda: not any(alive(pid) for pid in pids.values()), EXIT_S, f"both ranks {sorted(pids.values())} to exit")
    wait_for_requeue(cluster, job, restarts_before, sweep)
    stopped = step_of(point / "checkpoints/interrupted.ckpt")
    assert stopped > after_step
    log = submitit_log(sweep, job)
    for rank in (0, 1):
        assert f"rank {rank}: SIGUSR2, interrupt checkpoint written: stopping after step {stopped}" in log, log[-4000:]
    return stopped


def test_sigusr2_stops_both_ddp_ranks_whichever_receive_it(slurm: Cluster, long_epoch_root: Path,
                                                           tmp_path: Path) -> None:
    process = neo_train(slurm, tmp_path, *launcher(timeout_min=30, signal_delay_s=120, tasks=2),
                        *long_ddp_run(long_epoch_root, tmp_path))
    sweep = tmp_path / "outputs/sweeps/cpu_demo"
    point = wait_for(lambda: next((p.parent.parent for p in sweep.glob("*/checkpoints/last.ckpt")), None), 900,
                     "the first last.ckpt (step 5)")
    (job,) = job_ids(sweep)

    # 1. the time limit: SLURM signals both tasks
    pids = wait_for(lambda: training_past(point, 0, slurm, job), 300, "both ranks training")
    before = restarts(slurm, job)
    bring_time_limit_forward(slurm, job)
    stop = stopped_on_every_rank(slurm, job, sweep, point, pids, after_step=0, restarts_before=before)
    slurm.run("scontrol", "update", f"JobId={job}", "TimeLimit=30")  # the requeued run gets a full limit again

    # 2. and 3. a signal that reaches one rank only (rank 0, then rank 1)
    for rank in (0, 1):
        pids = wait_for(lambda s=stop: training_past(point, s, slurm, job), 600, f"the run to continue past {stop}")
        before = restarts(slurm, job)
        os.kill(pids[rank], signal.SIGUSR2)
        stop = stopped_on_every_rank(slurm, job, sweep, point, pids, after_step=stop, restarts_before=before)

    code, out = finish(process, tmp_path, timeout_s=1200)
    assert code == 0, out[-6000:] + submitit_log(sweep, job)
    completed(slurm, job)
    assert run_dirs(sweep) == [point]
    record = summary(point)
    assert record["status"] == "finished" and record["steps"] == STEPS, record
    assert Path(record["resumed_from"]) == point / "checkpoints/interrupted.ckpt" and record["start_step"] == stop
    assert_nothing_lost(checkpoints=(point / "checkpoints",))
    assert partial_files(sweep) == []
