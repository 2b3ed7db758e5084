"""Writing a file so that readers never see half of it: write to a temporary file beside the target, then
``os.replace`` it (atomic on one filesystem). Used for JSON outputs, sweep tables, sidecars and checkpoints
that other processes may read while they are being written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path


@cache
def new_file_mode() -> int:
    """The permission bits ``open()`` gives a new file here: 0o666 less the process umask (read once).

    ``mkstemp`` creates its file 0o600; without this every atomically written output would be private.
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path`` (parents created); on success it replaces ``path``,
    on any error (or interrupt) it is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, new_file_mode())
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
