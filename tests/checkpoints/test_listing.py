"""A run's checkpoints, newest first by one rule: a local folder and the bucket (a local-folder bucket, whose
listing carries the times set here) order the same names and times the same way; ckpt_path=auto takes the first
readable local one, else the bucket's newest."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from neo.checkpoints.listing import bucket_checkpoints, checkpoint_order, local_checkpoints
from neo.checkpoints.resume import newest_checkpoint
from neo.storage import StorageSettings

RUN = "ordered"
T0 = 1_700_000_000.0

# name -> modification time: every tie-break of the rule is needed to order these
CASES = {
    "best.ckpt": T0 + 5.0,            # newest second: first, whatever its name
    "step=30.ckpt": T0 + 3.2,         # same second as the next three: the higher step wins ...
    "step=20.ckpt": T0 + 3.9,         # ... even when saved later within that second
    "interrupted.ckpt": T0 + 3.1,     # no step: a file written to resume from, interrupted before last
    "last.ckpt": T0 + 3.8,
    "other.ckpt": T0 + 3.0,           # then any other name of that second
    "epoch=0.ckpt": T0 + 1.0,         # older seconds last
    ".temp-handover.ckpt": T0 + 9.0,  # hidden: not a checkpoint of the run
    "notes.txt": T0 + 9.0,
}
EXPECTED = ["best.ckpt", "step=30.ckpt", "step=20.ckpt", "interrupted.ckpt", "last.ckpt", "other.ckpt", "epoch=0.ckpt"]


def _write(folder: Path, names: dict[str, float], content: bytes = b"x") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, when in names.items():
        (folder / name).write_bytes(content)
        os.utime(folder / name, (when, when))


def _settings(tmp_path: Path) -> StorageSettings:
    return StorageSettings(bucket=str(tmp_path / "bucket"), cache_dir=tmp_path / "cache")


def test_local_folder_and_bucket_order_the_same_names_the_same_way(tmp_path) -> None:
    settings = _settings(tmp_path)
    _write(tmp_path / "run/checkpoints", CASES)
    _write(tmp_path / "bucket" / settings.run_checkpoint_dir(RUN), CASES)
    local = local_checkpoints(tmp_path / "run/checkpoints")
    remote = bucket_checkpoints(settings, RUN)
    assert [f.name for f in local] == EXPECTED
    assert [f.name for f in remote] == EXPECTED
    assert not any(f.in_bucket for f in local) and all(f.in_bucket for f in remote)
    assert remote[0].location == settings.url(f"{settings.run_checkpoint_dir(RUN)}/best.ckpt")
    assert bucket_checkpoints(settings, "no-such-run") == [] and local_checkpoints(tmp_path / "none") == []


def test_the_rule_reads_times_to_the_second_as_a_bucket_reports_them() -> None:
    """A bucket's LastModified is whole seconds: the local sub-second time never changes the order."""
    for name, when in CASES.items():
        assert checkpoint_order(name, when) == checkpoint_order(name, float(int(when)))
    assert checkpoint_order("last-v1.ckpt", T0) > checkpoint_order("best.ckpt", T0)
    assert checkpoint_order("last.ckpt", T0 + 1) > checkpoint_order("interrupted.ckpt", T0)


def test_unsafe_run_name_is_refused_before_listing(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"'\.\.' is not allowed"):
        bucket_checkpoints(_settings(tmp_path), "../other-run")


def test_newest_checkpoint_takes_the_first_readable_local_one_else_the_bucket(tmp_path, tiny_checkpoint) -> None:
    settings = _settings(tmp_path)
    local = tmp_path / "run/checkpoints"
    remote = tmp_path / "bucket" / settings.run_checkpoint_dir(RUN)
    _write(local, {"last.ckpt": T0 + 2}, b"PK\x03\x04 truncated")  # newest but unreadable: skipped
    _write(local, {"best.ckpt": T0 + 1}, Path(tiny_checkpoint).read_bytes())
    _write(remote, {"last.ckpt": T0 + 9}, Path(tiny_checkpoint).read_bytes())
    found = newest_checkpoint(local, RUN, settings)
    assert found.name == "best.ckpt" and not found.in_bucket  # a readable local checkpoint: the bucket is not asked
    shutil.rmtree(local)
    found = newest_checkpoint(local, RUN, settings)
    assert found.name == "last.ckpt" and found.in_bucket
    assert newest_checkpoint(local, "another-run", settings) is None
    assert newest_checkpoint(local) is None  # no bucket given: local only


def test_offline_with_a_bucket_and_nothing_local_never_answers_none(tmp_path, monkeypatch) -> None:
    from neo.storage.errors import ResolveError

    monkeypatch.setenv("NEO_OFFLINE", "true")
    settings = StorageSettings(bucket="r2://some-bucket", cache_dir=tmp_path / "cache")
    with pytest.raises(ResolveError, match="skipped \\(offline\\)"):
        newest_checkpoint(tmp_path / "none", RUN, settings)


def test_listing_and_the_run_folder_guard_import_no_torch() -> None:
    """The run-folder guard lists a run's checkpoints in Hydra's launcher, before torch loads."""
    import subprocess
    import sys

    code = ("import sys, neo.checkpoints.listing, neo.training.run_folder\n"
            "print(sorted(m for m in ('torch', 'lightning', 'timm', 'cv2') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]", result.stdout
