"""Run folder rules without training: who a run is, when a fresh start is refused, when a run is finished."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neo.training.run_folder import RunFolderTaken, check_fresh_start, finished_run, run_identity
from tests.conftest import train_overrides
from tests.training.helpers import compose_train


def _cfg(tmp_path: Path, *extra: str):
    return compose_train(train_overrides(tmp_path / "data", tmp_path, "run_name=mine", *extra))


def _held(cfg, *names: str) -> Path:
    folder = Path(cfg.paths.checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"a checkpoint")
    return folder


def test_debug_runs_are_other_runs_in_other_folders(tmp_path: Path) -> None:
    real, debug = _cfg(tmp_path), _cfg(tmp_path, "debug=limit")
    assert run_identity(real) == "mine" and run_identity(debug) == "mine-debug-limit"
    assert Path(debug.paths.run_dir).name == "mine-debug-limit" and Path(real.paths.run_dir).name == "mine"
    assert debug.sync_checkpoints is False and _cfg(tmp_path, "debug=fast", "sync_checkpoints=true").sync_checkpoints


def test_a_fresh_run_is_refused_where_checkpoints_are_unless_resumed_or_overwritten(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    check_fresh_start(cfg)  # nothing there yet
    folder = _held(cfg, "last.ckpt", "best.ckpt")
    with pytest.raises(RunFolderTaken) as refused:
        check_fresh_start(cfg)
    message = str(refused.value)
    assert str(folder) in message and "best.ckpt, last.ckpt" in message
    assert "ckpt_path=auto" in message and "run_name=mine_2" in message and "overwrite=true" in message
    check_fresh_start(_cfg(tmp_path, "ckpt_path=auto"))
    check_fresh_start(_cfg(tmp_path, "overwrite=true"))
    check_fresh_start(_cfg(tmp_path, "run_name=mine_2"))
    check_fresh_start(_cfg(tmp_path, "debug=limit"))  # its own folder: nothing there


def test_the_bucket_prefix_counts_like_the_folder(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    cfg = _cfg(tmp_path, f"storage.bucket={bucket}", "storage.prefix=team")
    remote = bucket / "team/runs/mine/checkpoints"
    remote.mkdir(parents=True)
    (remote / "last.ckpt").write_bytes(b"their checkpoint")
    with pytest.raises(RunFolderTaken, match="runs/mine/checkpoints holds last.ckpt"):
        check_fresh_start(cfg)
    check_fresh_start(_cfg(tmp_path, f"storage.bucket={bucket}", "storage.prefix=team", "sync_checkpoints=false"))


def test_finished_means_its_summary_reached_this_commands_max_epochs(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "ckpt_path=auto", "trainer.max_epochs=3")
    _held(cfg, "last.ckpt")
    summary = Path(cfg.paths.run_dir) / "summary.json"
    summary.write_text(json.dumps({"status": "finished", "epochs": 3, "steps": 18, "metrics": {"AP": 0.5}}))
    finished = finished_run(cfg)
    assert finished is not None and "already finished" in finished.message and "trainer.max_epochs" in finished.message
    assert finished_run(_cfg(tmp_path, "ckpt_path=auto", "trainer.max_epochs=5")) is None  # raised: continue
    assert finished_run(_cfg(tmp_path, "trainer.max_epochs=3")) is None  # not ckpt_path=auto
    summary.write_text(json.dumps({"status": "interrupted", "epochs": 3, "steps": 18}))
    assert finished_run(cfg) is None


def test_run_record_names_the_folder_and_its_summary_once(tmp_path: Path) -> None:
    """run_id is the one naming (the YAML's ${neo.run_id:...} and run_identity agree); summary.json is written and
    read through the run record."""
    from neo.training.run_folder import read_summary, run_id, summary_path, write_summary

    assert run_id("mine") == "mine" and run_id("mine", None) == "mine" and run_id(7, "fast") == "7-debug-fast"
    for mode in ("fast", "limit", "overfit", "profile"):
        cfg = _cfg(tmp_path, f"debug={mode}")
        assert Path(cfg.paths.run_dir).name == run_id("mine", mode) == run_identity(cfg)
    run_dir = tmp_path / "runs/recorded"
    assert read_summary(run_dir) is None
    written = write_summary(run_dir, {"status": "finished", "epochs": 2, "run_dir": run_dir})
    assert written == summary_path(run_dir) == run_dir / "summary.json"
    assert read_summary(run_dir) == {"status": "finished", "epochs": 2, "run_dir": str(run_dir)}
    summary_path(run_dir).write_text("{ half a fil")
    assert read_summary(run_dir) is None
