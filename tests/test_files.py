"""neo.files: a file is replaced whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from neo.files import atomic_path, write_text_atomic


def test_write_replaces_whole_file_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "summary.json"
    write_text_atomic(target, "first")
    write_text_atomic(target, "second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["summary.json"]


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "best.ckpt"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text("{}")  # what the user's umask gives a new file
    target = write_text_atomic(tmp_path / "predictions.json", "{}")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's private 0o600
