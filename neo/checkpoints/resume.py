"""Turn ``ckpt_path`` (path | URL | bare filename | ``auto`` | ``last`` | ``best``) into a local file, and
refuse a checkpoint that cannot be read or does not fit the model with a one-paragraph error (the reading
and checking is :mod:`neo.checkpoints.format`'s, shared by every command).

``auto`` looks for the newest readable ``*.ckpt`` in this run's checkpoint folder, then asks neo.storage
for the newest one of this run name in the bucket; it always says what it found (Lightning's own
``ckpt_path="last"`` silently starts from scratch when there is none). Errors are :class:`CheckpointError`
(a ``ConfigError``: the CLI prints the message, no traceback).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from neo.checkpoints.format import CheckpointError, check_state_dict_fits, read_neo

__all__ = ["CheckpointError", "WeightsUnavailableError", "check_state_dict_fits", "newest_local_checkpoint",
           "resolve_ckpt_path", "resolve_identifier", "storage_settings"]

log = logging.getLogger(__name__)

# Checkpoints that resume a run, by preference when equally new.
RESUMABLE = ("last.ckpt", "interrupted.ckpt")


class WeightsUnavailableError(CheckpointError, FileNotFoundError):
    """A weight/checkpoint identifier could not be turned into a local file (the message lists where neo looked)."""


def _named(key: str | None, value: Any) -> str:
    return f"{key}={str(value)!r}" if key else repr(str(value))


def newest_local_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """Newest readable ``last.ckpt`` / ``interrupted.ckpt`` (then any ``*.ckpt``) in ``checkpoint_dir``.

    An unreadable file (e.g. truncated by a crash during a copy) is skipped with a warning.
    """
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return None
    preferred = [folder / name for name in RESUMABLE if (folder / name).is_file()]
    others = [p for p in folder.glob("*.ckpt") if p.is_file() and p not in preferred]
    for group in (preferred, others):
        for path in sorted(group, key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                read_neo(path, key=None, mmap=True, need_config=False)
                return path
            except CheckpointError as exc:
                log.warning("ckpt_path=auto: skipping %s", exc)
    return None


def storage_settings(storage_cfg: Any):
    """``neo.storage.StorageSettings`` from ``cfg.storage`` (None when storage is not configured)."""
    if storage_cfg is None:
        return None
    from neo.storage.settings import StorageSettings

    return StorageSettings.from_config(storage_cfg)


def resolve_identifier(identifier: str, storage_cfg: Any = None, key: str | None = None) -> Path:
    """A local path as is; anything else (URL, bare filename, registry name) through ``neo.storage.resolve``.

    Raises WeightsUnavailableError (naming ``key`` when given, and every place neo looked) if it cannot.
    """
    path = Path(identifier).expanduser()
    if path.is_file():
        return path
    try:
        from neo.storage import resolve
    except ImportError as exc:
        raise FileNotFoundError(
            f"{identifier!r} is not a local file and neo.storage.resolve is unavailable ({exc}); give a local path"
        ) from exc
    try:
        return Path(resolve(identifier, storage=storage_settings(storage_cfg)))
    except (FileNotFoundError, ValueError) as exc:  # ResolveError, unsafe keys, a folder given as a file
        raise WeightsUnavailableError(f"{_named(key, identifier)} cannot be used. {exc}") from None


def resolve_ckpt_path(ckpt_path: str | None, run_name: str, checkpoint_dir: str | Path,
                      storage_cfg: Any = None) -> Path | None:
    """Local, readable checkpoint file to resume from, or None to start fresh (logged either way).

    None or "" start fresh; ``last``/``best`` are that file of this run's checkpoint folder; ``auto`` the newest
    readable one here or in the bucket (None when there is none); anything else goes through the resolver.
    """
    if ckpt_path is None or not str(ckpt_path).strip():
        return None
    if ckpt_path in ("last", "best"):
        path = Path(checkpoint_dir) / f"{ckpt_path}.ckpt"
        if not path.is_file():
            raise WeightsUnavailableError(
                f"ckpt_path={ckpt_path} but {path} does not exist. Fix: use ckpt_path=auto or a path")
        read_neo(path, key="ckpt_path", value=ckpt_path, mmap=True, need_config=False)
        log.info("Resuming from %s", path)
        return path
    if ckpt_path == "auto":
        path = newest_local_checkpoint(checkpoint_dir)
        if path is None and storage_cfg is not None:
            path = _auto_from_storage(run_name, storage_cfg)
            if path is not None:
                read_neo(path, key="ckpt_path", value=path, mmap=True, need_config=False)
        if path is None:
            log.info("ckpt_path=auto: no checkpoint of run %r in %s or the bucket; starting fresh", run_name,
                     checkpoint_dir)
        else:
            log.info("ckpt_path=auto: resuming run %r from %s", run_name, path)
        return path
    path = resolve_identifier(str(ckpt_path), storage_cfg, key="ckpt_path")
    read_neo(path, key="ckpt_path", value=ckpt_path, mmap=True, need_config=False)
    log.info("Resuming from %s", path)
    return path


def _auto_from_storage(run_name: str, storage_cfg: Any) -> Path | None:
    try:
        from neo.checkpoints.sync import find_auto_checkpoint
    except ImportError:
        return None
    try:
        found = find_auto_checkpoint(run_name, storage_settings(storage_cfg))
    except (FileNotFoundError, ValueError) as exc:  # the bucket could not be listed / the copy not fetched
        raise WeightsUnavailableError(
            f"ckpt_path=auto: run {run_name!r} has no local checkpoint and the bucket could not be searched for "
            f"one. {exc}\nStarting fresh now would later replace the bucket's checkpoints of this run. Fix: restore "
            f"access to the bucket and re-run, or pass ckpt_path=null (or another run_name) to start a new run."
        ) from None
    return Path(found) if found else None
