"""Turn ``ckpt_path`` (path | URL | bare filename | ``auto`` | ``last`` | ``best``) into a local file, and
refuse a checkpoint that cannot be read or does not fit the model with a one-paragraph error (the reading
and checking is :mod:`neo.checkpoints.format`'s, shared by every command).

``auto`` takes :func:`newest_checkpoint`: the newest readable ``*.ckpt`` in this run's checkpoint folder, else
the newest one of this run name in the bucket (both ordered by the one rule of
:mod:`neo.checkpoints.listing`); it always says what it found (Lightning's own ``ckpt_path="last"`` silently
starts from scratch when there is none). Errors are :class:`CheckpointError` (a ``ConfigError``: the CLI
prints the message, no traceback).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from neo.checkpoints.format import CheckpointError, check_state_dict_fits, named_value, read_neo
from neo.checkpoints.listing import CheckpointFile, bucket_checkpoints, local_checkpoints

__all__ = ["CheckpointError", "WeightsUnavailableError", "check_state_dict_fits", "newest_checkpoint",
           "newest_local_checkpoint", "resolve_ckpt_path", "resolve_identifier", "storage_settings"]

log = logging.getLogger(__name__)


class WeightsUnavailableError(CheckpointError, FileNotFoundError):
    """A weight/checkpoint identifier could not be turned into a local file (the message lists where neo looked)."""


def newest_checkpoint(checkpoint_dir: str | Path, run_name: str | None = None,
                      storage: Any = None) -> CheckpointFile | None:
    """The checkpoint a run continues from (``ckpt_path=auto``): the first readable one of the local folder,
    newest first, else the newest of ``run_name`` in the bucket of ``storage`` (``cfg.storage`` or
    StorageSettings; listed, not downloaded); None when there is none. The order is
    :mod:`neo.checkpoints.listing`'s, the same in both places.

    An unreadable local file (e.g. truncated by a crash during a copy) is skipped with a warning. A bucket
    that cannot be listed, or offline mode with a bucket, raises ResolveError naming both places: answering
    "none" would start fresh and later replace the bucket's checkpoints.
    """
    for found in local_checkpoints(checkpoint_dir):
        try:
            read_neo(found.location, key=None, mmap=True, need_config=False)
            return found
        except CheckpointError as exc:
            log.warning("ckpt_path=auto: skipping %s", exc)
    settings = storage_settings(storage) if run_name is not None else None
    if settings is None or not settings.bucket:
        return None
    from neo.storage.errors import Attempt, ResolveError, classify

    key = settings.run_checkpoint_dir(run_name)
    here = Attempt(str(checkpoint_dir), "no checkpoint")
    if settings.offline_remote:
        raise ResolveError(f"ckpt_path=auto (run {run_name})", [here, Attempt(settings.url(key), "skipped (offline)")],
                           settings.protocol)
    try:
        remote = bucket_checkpoints(settings, run_name)
    except ValueError:  # an unsafe run name, refused before any request
        raise
    except Exception as exc:  # noqa: BLE001 - network, credentials, server gone: do not guess "none"
        raise ResolveError(f"ckpt_path=auto (run {run_name})", [
            here, Attempt(settings.url(key), classify(exc), f"{type(exc).__name__}: {exc}".splitlines()[0][:200]),
        ], settings.protocol) from exc
    return remote[0] if remote else None


def newest_local_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The newest readable checkpoint of a local checkpoint folder (:func:`newest_checkpoint` without a bucket)."""
    found = newest_checkpoint(checkpoint_dir)
    return Path(found.location) if found else None


def storage_settings(storage_cfg: Any):
    """``neo.storage.StorageSettings`` from ``cfg.storage`` (None when storage is not configured; settings as is)."""
    if storage_cfg is None:
        return None
    from neo.storage.settings import StorageSettings

    return storage_cfg if isinstance(storage_cfg, StorageSettings) else StorageSettings.from_config(storage_cfg)


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
        raise WeightsUnavailableError(f"{named_value(key, identifier)} cannot be used. {exc}") from None


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
        path = _auto(run_name, checkpoint_dir, storage_cfg)
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


def _auto(run_name: str, checkpoint_dir: str | Path, storage_cfg: Any) -> Path | None:
    """``ckpt_path=auto``: :func:`newest_checkpoint` as a local file (a bucket copy is downloaded and read)."""
    try:
        found = newest_checkpoint(checkpoint_dir, run_name, storage_cfg)
        if found is None or not found.in_bucket:
            return Path(found.location) if found else None
        from neo.storage import resolve

        path = Path(resolve(found.location, storage=storage_settings(storage_cfg), refresh=True))
    except (FileNotFoundError, ValueError) as exc:  # the bucket could not be listed / the copy not fetched
        raise WeightsUnavailableError(
            f"ckpt_path=auto: run {run_name!r} has no local checkpoint and the bucket could not be searched for "
            f"one. {exc}\nStarting fresh now would later replace the bucket's checkpoints of this run. Fix: restore "
            f"access to the bucket and re-run, or pass ckpt_path=null (or another run_name) to start a new run."
        ) from None
    read_neo(path, key="ckpt_path", value=path, mmap=True, need_config=False)
    return path
