"""Turn ``ckpt_path`` (path | URL | bare filename | ``auto`` | ``last`` | ``best``) into a local file.

``auto`` looks for the newest ``*.ckpt`` in this run's checkpoint folder, then asks neo.storage for
the newest one of this run name in the bucket; it always says what it found (Lightning's own
``ckpt_path="last"`` silently starts from scratch when there is none).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Checkpoints that resume a run, by preference when equally new.
RESUMABLE = ("last.ckpt", "interrupted.ckpt")


def newest_local_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """Newest of ``last.ckpt`` / ``interrupted.ckpt`` (then any ``*.ckpt``) in ``checkpoint_dir``."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return None
    candidates = [folder / name for name in RESUMABLE if (folder / name).is_file()]
    candidates = candidates or sorted(folder.glob("*.ckpt"))
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def storage_settings(storage_cfg: Any):
    """``neo.storage.StorageSettings`` from ``cfg.storage`` (None when storage is not configured)."""
    if storage_cfg is None:
        return None
    from neo.storage.settings import StorageSettings

    return StorageSettings.from_config(storage_cfg)


def resolve_identifier(identifier: str, storage_cfg: Any = None) -> Path:
    """A local path as is; anything else (URL, bare filename, registry name) through ``neo.storage.resolve``."""
    path = Path(identifier).expanduser()
    if path.is_file():
        return path
    try:
        from neo.storage import resolve
    except ImportError as exc:
        raise FileNotFoundError(
            f"{identifier!r} is not a local file and neo.storage.resolve is unavailable ({exc}); give a local path"
        ) from exc
    return Path(resolve(identifier, storage=storage_settings(storage_cfg)))


def resolve_ckpt_path(ckpt_path: str | None, run_name: str, checkpoint_dir: str | Path,
                      storage_cfg: Any = None) -> Path | None:
    """Local checkpoint file to resume from, or None to start fresh (logged either way)."""
    if ckpt_path is None:
        return None
    if ckpt_path in ("last", "best"):
        path = Path(checkpoint_dir) / f"{ckpt_path}.ckpt"
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path} but {path} does not exist; use ckpt_path=auto or a path")
        log.info("Resuming from %s", path)
        return path
    if ckpt_path == "auto":
        path = newest_local_checkpoint(checkpoint_dir)
        if path is None and storage_cfg is not None:
            path = _auto_from_storage(run_name, storage_cfg)
        if path is None:
            log.info("ckpt_path=auto: no checkpoint of run %r in %s or the bucket; starting fresh", run_name,
                     checkpoint_dir)
        else:
            log.info("ckpt_path=auto: resuming run %r from %s", run_name, path)
        return path
    path = resolve_identifier(str(ckpt_path), storage_cfg)
    log.info("Resuming from %s", path)
    return path


def _auto_from_storage(run_name: str, storage_cfg: Any) -> Path | None:
    try:
        from neo.storage import find_auto_checkpoint
    except ImportError:
        return None
    found = find_auto_checkpoint(run_name, storage_settings(storage_cfg))
    return Path(found) if found else None
