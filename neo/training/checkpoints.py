"""Turn ``ckpt_path`` (path | URL | bare filename | ``auto`` | ``last`` | ``best``) into a local file, and
refuse a checkpoint that cannot be read or does not fit the model with a one-paragraph error.

``auto`` looks for the newest readable ``*.ckpt`` in this run's checkpoint folder, then asks neo.storage
for the newest one of this run name in the bucket; it always says what it found (Lightning's own
``ckpt_path="last"`` silently starts from scratch when there is none). Errors are :class:`CheckpointError`
(a ``ConfigError``: the CLI prints the message, no traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neo.training.config_check import ConfigError

log = logging.getLogger(__name__)

# Checkpoints that resume a run, by preference when equally new.
RESUMABLE = ("last.ckpt", "interrupted.ckpt")
_EXAMPLES = 3  # key names quoted per kind of mismatch


class CheckpointError(ConfigError):
    """A checkpoint named in the config cannot be read, or does not fit the model being trained."""


class WeightsUnavailableError(CheckpointError, FileNotFoundError):
    """A weight/checkpoint identifier could not be turned into a local file (the message lists where neo looked)."""


def _named(key: str | None, value: Any) -> str:
    return f"{key}={str(value)!r}" if key else repr(str(value))


def read_checkpoint_file(path: str | Path, key: str | None = "ckpt_path", value: Any = None) -> dict[str, Any]:
    """Open a Lightning checkpoint cheaply (memory-mapped, ``weights_only=True``) or raise CheckpointError.

    Catches truncated/garbage files (an interrupted copy or download), files that need full pickle
    loading, and files that are not Lightning training checkpoints (no ``state_dict``).
    """
    import torch

    path = Path(path)
    named = _named(key, path if value is None else value)
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/UnpicklingError/EOFError/OSError
        reason = (str(exc).splitlines() or [""])[0].split(". ")[0][:160]
        raise CheckpointError(
            f"{named}: {path} is not a readable checkpoint ({type(exc).__name__}: {reason}). It is probably "
            f"truncated (an interrupted copy, save or download) or not a PyTorch checkpoint. Fix: pass another "
            f"checkpoint of this run (best.ckpt, interrupted.ckpt or its bucket copy), or ckpt_path=auto to take "
            f"the newest readable one."
        ) from None
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        keys = sorted(checkpoint)[:6] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointError(
            f"{named}: {path} is not a Lightning training checkpoint (no 'state_dict'; has {keys}). "
            f"Fix: to start from these weights use pretrained=<file> (neo or official RT-DETR weights) "
            f"instead of ckpt_path, which resumes a neo training run."
        )
    return dict(checkpoint)


def check_state_dict_fits(expected: Mapping[str, Any], checkpoint: Mapping[str, Any],
                          path: str | Path | None = None, model_name: str | None = None) -> None:
    """Raise CheckpointError when ``checkpoint["state_dict"]`` has other keys or shapes than ``expected``
    (a module's ``state_dict()``): names a few of each kind and the model preset each side was built from."""
    state = checkpoint.get("state_dict") or {}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k} (checkpoint {list(state[k].shape)}, model {list(expected[k].shape)})" for k in expected
                  if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or mis_shaped):
        return
    parts = []
    for label, names in (("missing from the checkpoint", missing), ("unexpected", unexpected),
                         ("with another shape", mis_shaped)):
        if names:
            more = f", ... {len(names) - _EXAMPLES} more" if len(names) > _EXAMPLES else ""
            parts.append(f"{len(names)} keys {label} ({', '.join(names[:_EXAMPLES])}{more})")
    hparams = checkpoint.get("hyper_parameters") or {}
    trained = ((hparams.get("model") or {}).get("name")) if isinstance(hparams, Mapping) else None
    origin = f"it was trained with model={trained}, this run builds model={model_name}" if trained else \
        f"this run builds model={model_name}"
    fix = f"resume with model={trained} (and the same data.num_classes)" if trained and trained != model_name else \
        "resume with the model preset and data.num_classes the checkpoint was trained with"
    raise CheckpointError(
        f"ckpt_path={str(path)!r} does not fit the model: {origin}; {'; '.join(parts)}. Fix: {fix}; to start "
        f"a new run of the same architecture from its weights with another class count, use pretrained=<file>."
    )


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
                read_checkpoint_file(path, key=None)
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
    """Local, readable checkpoint file to resume from, or None to start fresh (logged either way)."""
    if ckpt_path is None:
        return None
    if ckpt_path in ("last", "best"):
        path = Path(checkpoint_dir) / f"{ckpt_path}.ckpt"
        if not path.is_file():
            raise WeightsUnavailableError(
                f"ckpt_path={ckpt_path} but {path} does not exist. Fix: use ckpt_path=auto or a path")
        read_checkpoint_file(path, value=ckpt_path)
        log.info("Resuming from %s", path)
        return path
    if ckpt_path == "auto":
        path = newest_local_checkpoint(checkpoint_dir)
        if path is None and storage_cfg is not None:
            path = _auto_from_storage(run_name, storage_cfg)
            if path is not None:
                read_checkpoint_file(path, value=path)
        if path is None:
            log.info("ckpt_path=auto: no checkpoint of run %r in %s or the bucket; starting fresh", run_name,
                     checkpoint_dir)
        else:
            log.info("ckpt_path=auto: resuming run %r from %s", run_name, path)
        return path
    path = resolve_identifier(str(ckpt_path), storage_cfg, key="ckpt_path")
    read_checkpoint_file(path, value=ckpt_path)
    log.info("Resuming from %s", path)
    return path


def _auto_from_storage(run_name: str, storage_cfg: Any) -> Path | None:
    try:
        from neo.storage import find_auto_checkpoint
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
