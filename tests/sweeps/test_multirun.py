"""`neo-train -m`: a resolution x lr grid through the real CLI, its folders and its summary table;
a sweep point re-run with ckpt_path=auto continues in its own folder (what a SLURM requeue does).

The grid and the failed point run neo-train's entry point in this process (Hydra's basic launcher runs the
points one after another either way); the SIGTERM test needs a real process and starts one."""

from __future__ import annotations

import csv
import signal
import time
from pathlib import Path

from tests.support.commands import start_command
from tests.sweeps.helpers import output, read_json, run_cli, write_tiny_experiment

GRID = ["data.resolution=256x144,320x180", "optim.lr=1e-4,2e-4"]
POINTS = {f"data.resolution={r},debug=fast,optim.lr={lr}" for r in ("256x144", "320x180") for lr in ("0.0001", "0.0002")}


def test_two_by_two_grid_writes_four_runs_and_a_four_row_summary(synth_root: Path, tmp_path: Path) -> None:
    selected = write_tiny_experiment(tmp_path / "conf", synth_root)
    result = run_cli("neo-train", "-m", *selected, f"paths.root_dir={tmp_path}", "debug=fast", *GRID, cwd=tmp_path)
    assert result.returncode == 0, output(result)

    sweep = tmp_path / "outputs/sweeps/tiny_sweep"
    runs = {p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")}  # .neo-sweep: bookkeeping
    assert runs == POINTS  # readable folder per point, named after its swept overrides only
    for name in POINTS:
        record = read_json(sweep / name / "summary.json")
        assert record["status"] == "finished" and record["error"] is None, record
        assert record["steps"] == 1 and "AP" in record["metrics"] and "AP50" in record["metrics"]
        assert record["run_name"] == f"tiny_sweep__{name}"  # per-point bucket folder and ckpt_path=auto

    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 4 and {r["run"] for r in rows} == POINTS
    assert {(r["data.resolution"], r["optim.lr"]) for r in rows} == {
        (r, lr) for r in ("256x144", "320x180") for lr in ("0.0001", "0.0002")}
    assert all(r["status"] == "finished" and r["AP"] != "" and float(r["wall_time_s"]) > 0 for r in rows)
    aps = [float(r["AP"]) for r in rows]
    assert aps == sorted(aps, reverse=True)
    markdown = (sweep / "summary.md").read_text()
    assert markdown.startswith("| data.resolution | optim.lr | status | AP | AP50 |")
    assert len(markdown.strip().splitlines()) == 2 + 4
    assert "neo-train sweep summary: 4 runs" in result.stdout and markdown.splitlines()[2] in result.stdout


def test_failed_point_is_a_row_with_its_error_and_the_sweep_exits_1(synth_root: Path, tmp_path: Path) -> None:
    selected = write_tiny_experiment(tmp_path / "conf", synth_root)
    result = run_cli("neo-train", "-m", *selected, f"paths.root_dir={tmp_path}", "debug=fast",
                     "data.resolution=256x144,300x200", cwd=tmp_path)  # 300x200 is not 16:9
    assert result.returncode == 1, output(result)
    rows = {r["data.resolution"]: r for r in csv.DictReader((tmp_path / "outputs/sweeps/tiny_sweep/summary.csv").open())}
    assert rows["256x144"]["status"] == "finished"  # the bad point did not stop the good one
    assert rows["300x200"]["status"] == "failed" and "300x200" in rows["300x200"]["error"]
    assert "1 not finished" in result.stdout


def test_stopped_sweep_point_rerun_continues_in_its_own_folder(synth_root: Path, tmp_path: Path) -> None:
    """SIGTERM (SLURM preemption / requeue) stops the sweep with 130; the same command continues the point."""
    selected = write_tiny_experiment(tmp_path / "conf", synth_root)
    command = ["-m", *selected, f"paths.root_dir={tmp_path}", "logger=none",
               "callbacks.ema=null", "ckpt_path=auto", "trainer.max_epochs=8", "trainer.limit_train_batches=2",
               "trainer.check_val_every_n_epoch=100", "optim.lr=1e-4"]
    sweep = tmp_path / "outputs/sweeps/tiny_sweep"
    process = start_command("neo-train", *command, cwd=tmp_path)
    deadline = time.monotonic() + 240
    while not list(sweep.glob("*/checkpoints/last.ckpt")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, process.stdout.read()[-4000:]
    point = next(sweep.glob("*/checkpoints/last.ckpt")).parent.parent
    assert "optim.lr=0.0001" in point.name and "trainer.max_epochs=8" in point.name
    process.send_signal(signal.SIGTERM)
    stopped, _ = process.communicate(timeout=120)
    assert process.returncode == 130, stopped[-4000:]
    assert read_json(point / "summary.json")["status"] == "interrupted"

    again = run_cli("neo-train", *command, cwd=tmp_path)  # the same command again (in this process)
    assert again.returncode == 0, output(again)
    assert [p.name for p in point.parent.iterdir() if p.is_dir() and not p.name.startswith(".")] == [point.name]  # no new folder
    record = read_json(point / "summary.json")
    assert record["status"] == "finished" and Path(record["resumed_from"]).parent == point / "checkpoints"
    assert record["start_step"] >= 2 and record["steps"] == 16  # continued, not restarted: 8 epochs x 2 steps
