"""A run's checkpoint files, in its local folder and in the bucket, newest first by one ordering rule.

Newest first means, for a local folder and for the bucket alike:

1. the modification time to the whole second (local mtime; the bucket's ``LastModified``, which has
   one-second resolution, so a local folder is read at the same resolution and both places order the
   same files the same way);
2. then the optimizer step in Lightning's ``step=N`` file names, higher first;
3. then the files written to resume from: ``interrupted.ckpt`` (written when a run stops, after any
   ``last.ckpt`` of the same second), then ``last.ckpt`` (``last-v1.ckpt`` ...), then any other name;
4. then the name, so the order is total.

Hidden files (Lightning's ``.temp*.ckpt`` hand-over between spawned processes) are not checkpoints of the
run. :func:`neo.checkpoints.resume.newest_checkpoint` takes the first readable one of this order for
``ckpt_path=auto``; the run-folder guard lists both places to refuse a fresh start over a run.
Torch-free (the guard runs before torch loads); the bucket is reached through neo.storage, imported lazily.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SUFFIX = ".ckpt"
# Names written to resume from, least preferred first (rank = index + 1; any other name ranks 0).
RESUME_NAMES = ("last", "interrupted")
_STEP = re.compile(r"step=(\d+)")


@dataclass(frozen=True)
class CheckpointFile:
    """One checkpoint of a run.

    name: the file name (``last.ckpt``); location: a local path or a bucket URL; modified: seconds since the
    epoch (local mtime or bucket ``LastModified``); fs_path: the object's path in the bucket filesystem (None
    for a local file).
    """

    name: str
    location: str
    modified: float
    fs_path: str | None = None

    @property
    def in_bucket(self) -> bool:
        return self.fs_path is not None


def checkpoint_order(name: str, modified: float) -> tuple[int, int, int, str]:
    """Sort key of the ordering rule in the module docstring (larger = newer)."""
    step = _STEP.search(name)
    stem = name.removesuffix(SUFFIX)
    rank = next((i + 1 for i, kind in enumerate(RESUME_NAMES) if stem == kind or stem.startswith(f"{kind}-v")), 0)
    return int(modified), int(step.group(1)) if step else -1, rank, name


def newest_first(files: Iterable[CheckpointFile]) -> list[CheckpointFile]:
    """``files`` newest first (:func:`checkpoint_order`)."""
    return sorted(files, key=lambda f: checkpoint_order(f.name, f.modified), reverse=True)


def is_checkpoint_name(name: str) -> bool:
    """A ``*.ckpt`` name that is not hidden (hidden ones are hand-over files, never pushed nor resumed)."""
    return name.endswith(SUFFIX) and not name.startswith(".")


def local_checkpoints(checkpoint_dir: str | Path) -> list[CheckpointFile]:
    """The checkpoint files of a run's local checkpoint folder, newest first ([] when there is no folder)."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    return newest_first(CheckpointFile(p.name, str(p), p.stat().st_mtime)
                        for p in folder.iterdir() if is_checkpoint_name(p.name) and p.is_file())


def bucket_checkpoints(settings: Any, run_name: str) -> list[CheckpointFile]:
    """The checkpoints of ``run_name`` in the bucket of ``settings`` (a ``neo.storage.StorageSettings`` with a
    bucket), newest first; [] when the run has no folder there.

    Raises StorageConfigError (a ValueError) for an unsafe run name before any request, and whatever the
    filesystem raises when the bucket cannot be listed (network, credentials): the caller decides what an
    unlisted bucket means.
    """
    from neo.storage.settings import check_key

    key = settings.run_checkpoint_dir(check_key(run_name))
    fs, root = settings.bucket_fs()
    folder = f"{root}/{key}"
    fs.invalidate_cache(folder)
    try:
        entries = fs.ls(folder, detail=True)
    except FileNotFoundError:
        return []
    files = []
    for info in entries:
        name = Path(str(info["name"]).rstrip("/")).name
        if info.get("type") == "file" and is_checkpoint_name(name):
            files.append(CheckpointFile(name, settings.url(f"{key}/{name}"), bucket_time(info), str(info["name"])))
    return newest_first(files)


def bucket_time(info: dict[str, Any]) -> float:
    """Modification time (seconds since the epoch) of an fsspec ``ls(detail=True)`` entry (0 when absent)."""
    value = info.get("LastModified") or info.get("mtime") or info.get("created") or 0
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)
