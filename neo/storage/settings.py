"""StorageSettings: where the bucket and the local cache are, built from ``cfg.storage``; safe key joining."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

# Keys that would put a secret into a config file; credentials come from the environment only.
_SECRET_OPTIONS = {"key", "secret", "token", "password", "username", "aws_access_key_id",
                   "aws_secret_access_key", "aws_session_token"}
_TRUE = {"1", "true", "yes", "on"}


def env_offline() -> bool:
    """True when ``NEO_OFFLINE`` is set to 1/true/yes/on."""
    return os.environ.get("NEO_OFFLINE", "").strip().lower() in _TRUE


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key; refuse ``..`` parts and a leading ``/``."""
    if key.startswith("/") or key.startswith("\\"):
        raise ValueError(f"Refusing object key {key!r}: keys are relative to the bucket; drop the leading '/'.")
    if any(part == ".." for part in key.replace("\\", "/").split("/")):
        raise ValueError(f"Refusing object key {key!r}: '..' is not allowed in keys.")
    return key


def join_key(*parts: str) -> str:
    """Join key parts with '/', skipping empty ones, after checking each part is safe."""
    cleaned = [check_key(p).strip("/") for p in parts if p and p.strip("/")]
    return "/".join(cleaned)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


@dataclass
class StorageSettings:
    """Where neo keeps weights and checkpoints.

    bucket: bucket root URL (``r2://name``, ``b2://name``, ``s3://name``, ``file:///dir``) or a local folder;
        None/"" means no bucket (cache and origins only).
    prefix: key prefix inside the bucket (e.g. ``neo``); layout below it:
        ``models/pretrained/{framework}/{file}``, ``checkpoints/{file}``, ``runs/{run}/checkpoints/{file}``.
    cache_dir: local cache folder (downloads and origin fetches land here).
    offline: never touch the network (``NEO_OFFLINE=1`` forces it too).
    retries / backoff_s: transient-error retries and first backoff (doubles each retry).
    upload_origin: after fetching from an original source, upload to the bucket in the background.
    lock_timeout_s: how long to wait for another process downloading the same file.
    drain_timeout_s: bounded wait for background uploads at teardown / process exit.
    upload_timeout_s: bound on one upload attempt to an S3-compatible bucket (then it is retried); None:
        120 s plus 1 s per MiB. Without it a connection that dies mid-upload can hang the upload forever.
    storage_options: extra non-secret fsspec options for the bucket (e.g. ``endpoint_url`` for s3://).
    """

    bucket: str | None = None
    prefix: str = ""
    cache_dir: Path = field(default_factory=lambda: Path(os.environ.get("NEO_CACHE_DIR", "~/.cache/neo")))
    offline: bool = False
    retries: int = 3
    backoff_s: float = 0.5
    upload_origin: bool = True
    lock_timeout_s: float = 900.0
    drain_timeout_s: float = 120.0
    upload_timeout_s: float | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cache_dir = Path(os.path.expandvars(str(self.cache_dir))).expanduser()
        self.offline = _as_bool(self.offline)
        self.prefix = join_key(self.prefix or "")
        self.bucket = (str(self.bucket).rstrip("/") or None) if self.bucket else None
        bad = sorted(k for k in self.storage_options if k.lower() in _SECRET_OPTIONS)
        if bad:
            raise ValueError(
                f"storage.storage_options holds secret option(s) {bad}: remove them from the config and set "
                "credentials in the environment (R2_ACCESS_KEY_ID/..., B2_APPLICATION_KEY_ID/..., AWS_ACCESS_KEY_ID/...)."
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> StorageSettings:
        """Build from ``cfg.storage`` (a DictConfig or dict); unknown keys are an error naming them."""
        if cfg is None:
            return cls()
        try:  # accept DictConfig without importing omegaconf at module level
            from omegaconf import DictConfig, OmegaConf

            if isinstance(cfg, DictConfig):
                cfg = OmegaConf.to_container(cfg, resolve=True)
        except ImportError:  # pragma: no cover
            pass
        values = dict(cfg)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown storage setting(s) {unknown}; valid keys: {sorted(known)}.")
        values["storage_options"] = dict(values.get("storage_options") or {})
        return cls(**values)

    @property
    def is_offline(self) -> bool:
        """Offline by setting or by ``NEO_OFFLINE`` (read at call time)."""
        return self.offline or env_offline()

    @property
    def protocol(self) -> str | None:
        """``r2``, ``b2``, ``s3``, ``file`` ... of the bucket, or None without a bucket."""
        if not self.bucket:
            return None
        return self.bucket.split("://", 1)[0] if "://" in self.bucket else "file"

    def bucket_fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """The bucket's file system and its root path (protocol stripped, prefix included)."""
        if not self.bucket:
            raise ValueError("No bucket configured: set storage.bucket (e.g. r2://my-bucket or a local folder).")
        fs, root = fsspec.core.url_to_fs(self.bucket, **self.storage_options)
        if self.protocol == "file":
            root = str(Path(root).expanduser())
        return fs, "/".join(p for p in (root.rstrip("/"), self.prefix) if p)

    def url(self, key: str) -> str:
        """Human-readable URL of ``key`` under bucket + prefix (never contains credentials)."""
        return "/".join(p for p in (self.bucket or "", self.prefix, check_key(key)) if p)

    @staticmethod
    def pretrained_key(framework: str, file_name: str) -> str:
        """Bucket key of a registry weight: ``models/pretrained/{framework}/{file}``."""
        return join_key("models/pretrained", framework, file_name)

    @staticmethod
    def checkpoint_key(file_name: str) -> str:
        """Bucket key of a bare-filename checkpoint: ``checkpoints/{file}``."""
        return join_key("checkpoints", file_name)

    @staticmethod
    def run_checkpoint_dir(run_name: str) -> str:
        """Bucket key folder of a run's checkpoints: ``runs/{run_name}/checkpoints``."""
        return join_key("runs", run_name, "checkpoints")
