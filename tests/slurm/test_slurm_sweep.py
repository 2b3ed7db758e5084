"""Scenario 1: a two-point lr sweep submitted to the real scheduler; both jobs run and the table lists both."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.faults.conftest import assert_nothing_lost, partial_files
from tests.slurm.cluster import Cluster
from tests.slurm.helpers import completed, finish, job_ids, launcher, neo_train, run_dirs, summary, tiny_run

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(1200)]


def test_lr_sweep_runs_one_slurm_job_per_point_and_lists_both(slurm: Cluster, synth_root: Path,
                                                              tmp_path: Path) -> None:
    overrides = [*launcher(), *tiny_run(synth_root, tmp_path, "trainer.max_epochs=2", "trainer.limit_train_batches=3",
                                        "trainer.limit_val_batches=1", "trainer.check_val_every_n_epoch=1"),
                 "optim.lr=1e-4,2e-4"]
    code, out = finish(neo_train(slurm, tmp_path, *overrides), tmp_path, timeout_s=900)
    assert code == 0, out[-6000:] + slurm.logs()

    sweep = tmp_path / "outputs/sweeps/cpu_demo"
    jobs = job_ids(sweep)
    assert len(jobs) == 2, jobs  # one SLURM job per sweep point
    for job in jobs:
        completed(slurm, job)
    points = run_dirs(sweep)
    assert len(points) == 2
    for point in points:
        record = summary(point)
        assert record["status"] == "finished" and record["steps"] == 6, record
        assert record["run_name"] == f"cpu_demo__{point.name}"
        assert (point / "checkpoints/last.ckpt").is_file() and (point / "checkpoints/best.ckpt").is_file()
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert sorted(r["optim.lr"] for r in rows) == ["0.0001", "0.0002"]
    assert all(r["status"] == "finished" and r["AP"] != "" for r in rows)
    assert "neo-train sweep summary: 2 runs" in out

    assert_nothing_lost(checkpoints=tuple(p / "checkpoints" for p in points))
    assert partial_files(sweep) == []
