"""Sweep folder names and the summary table, from run folders on disk (no training)."""

from __future__ import annotations

import json
from pathlib import Path

from neo.sweeps.dirnames import MAX_LEN, sweep_dirname
from neo.sweeps.table import NO_SUMMARY, collect, to_markdown, varying_keys, write_tables


def test_folder_names_are_the_overrides_made_safe() -> None:
    assert sweep_dirname("data.resolution=720p,optim.lr=0.0001", 3) == "data.resolution=720p,optim.lr=0.0001"
    assert sweep_dirname("", 3) == "job3"
    assert sweep_dirname("data.root=/data/coco,optim.lr=0.1") == "data.root=_data_coco,optim.lr=0.1"
    long_a, long_b = "x=" + "a" * 300, "x=" + "a" * 299 + "b"
    assert len(sweep_dirname(long_a).encode()) <= MAX_LEN
    assert sweep_dirname(long_a) != sweep_dirname(long_b)  # shortened names stay unique ...
    assert sweep_dirname(long_a) == sweep_dirname(long_a)  # ... and deterministic (re-runs find their folder)


def _run(sweep: Path, name: str, overrides: list[str], record: dict | None) -> None:
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra/overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "checkpoints").mkdir()
    if record is not None:
        (folder / "summary.json").write_text(json.dumps(record))


def test_rows_sorted_by_ap_with_failed_and_unfinished_runs_kept(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = {"status": "finished", "epochs": 3, "steps": 30, "wall_time_s": 65.0, "images_per_s": 12.5}
    _run(sweep, "r=720p,lr=1", ["paths.root_dir=/x", "r=720p", "lr=1"],
         {**done, "metrics": {"AP": 0.2, "AP50": 0.4}, "best_checkpoint": str(sweep / "r=720p,lr=1/best.ckpt")})
    _run(sweep, "r=1080p,lr=1", ["paths.root_dir=/x", "r=1080p", "lr=1"], {**done, "metrics": {"AP": 0.3, "AP50": 0.5}})
    _run(sweep, "r=1080p,lr=2", ["paths.root_dir=/x", "r=1080p", "lr=2"],
         {"status": "failed", "error": "NonFiniteLossError: non-finite loss | at step 3", "metrics": {}})
    _run(sweep, "r=720p,lr=2", ["paths.root_dir=/x", "r=720p", "lr=2"], None)  # killed before summary.json

    rows, earlier = collect(sweep)
    assert earlier == []  # no invocation marked the folder: every run counts
    assert [r.run for r in rows] == ["r=1080p,lr=1", "r=720p,lr=1", "r=1080p,lr=2", "r=720p,lr=2"]
    assert [r.status for r in rows][2:] == ["failed", NO_SUMMARY]
    assert varying_keys(rows) == ["r", "lr"]  # paths.root_dir is the same everywhere

    rows, csv_path, md_path = write_tables(sweep)
    lines = md_path.read_text().splitlines()
    assert lines[0] == ("| r | lr | status | AP | AP50 | epochs | steps | wall time | images/s | best checkpoint "
                        "| error |")
    assert lines[2] == "| 1080p | 1 | finished | 0.3000 | 0.5000 | 3 | 30 | 0:01:05 | 12.5 |  |  |"
    assert "| r=720p,lr=1/best.ckpt |" in lines[3]  # relative to the sweep folder
    assert "non-finite loss \\| at step 3" in lines[4]  # the error, escaped for Markdown
    header, *csv_rows = csv_path.read_text().splitlines()
    assert header.split(",")[:5] == ["run", "r", "lr", "status", "AP"] and len(csv_rows) == 4
    assert md_path.read_text() == to_markdown(rows, sweep)
