"""StorageSettings: where the bucket and the local cache are, built from ``cfg.storage``; the one bucket parser.

``parse_bucket`` is the only place a bucket setting becomes a location. A URL needs a scheme
(``r2://``, ``b2://``, ``s3://``, ``file://``) and a valid bucket name; with provider ``r2|b2|s3`` a bare
name means that provider's bucket; a local folder is only ever provider ``local``, a path, or ``file://``.
Anything else is refused with the value and the fix, so no remote setting ever becomes a local folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from neo.config_problems import problem, render
from neo.storage.errors import StorageConfigError
from neo.storage.redact import has_credentials, redact

# Keys that would put a secret into a config file; credentials come from the environment only.
_SECRET_OPTIONS = {"key", "secret", "token", "password", "username", "aws_access_key_id",
                   "aws_secret_access_key", "aws_session_token"}
_TRUE = {"1", "true", "yes", "on"}
PROVIDERS = ("local", "r2", "b2", "s3")
REMOTE_SCHEMES = ("r2", "b2", "s3")
# S3 bucket naming rules: 3-63 characters, lowercase letters, digits, '.' and '-', a letter or digit at each end.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):(.*)", re.DOTALL)
_CREDENTIAL_VARIABLES = ("R2_ACCESS_KEY_ID/R2_SECRET_ACCESS_KEY, B2_APPLICATION_KEY_ID/B2_APPLICATION_KEY or "
                         "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")


def env_offline() -> bool:
    """True when ``NEO_OFFLINE`` is set to 1/true/yes/on."""
    return os.environ.get("NEO_OFFLINE", "").strip().lower() in _TRUE


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key; refuse ``..`` parts, a leading ``/`` and ``//``."""
    if key.startswith("/") or key.startswith("\\"):
        raise StorageConfigError.of(f"Refusing object key {key!r}:", "keys are relative to the bucket",
                                    "drop the leading '/'")
    parts = key.replace("\\", "/").split("/")
    if any(part == ".." for part in parts):
        raise StorageConfigError.of(f"Refusing object key {key!r}:", "'..' is not allowed in keys",
                                    "name the key from the bucket (prefix) root, without '..'")
    if any(part == "" for part in parts[:-1]):
        raise StorageConfigError.of(f"Refusing object key {key!r}:", "it has an empty part ('//'); S3 keeps it as a "
                                    "different key than you meant", "write a single '/' between parts")
    return key


def has_userinfo(value: str) -> bool:
    """True when ``value`` carries credentials: ``KEY:SECRET@`` or ``user@`` in a URL, a typo of one or a bare value."""
    return has_credentials(value)


def redact_url(value: str) -> str:
    """``value`` with any credentials replaced by ``***`` (safe to print): :func:`neo.storage.redact.redact`."""
    return redact(value)


def refuse_userinfo(value: str, what: str) -> None:
    """Raise StorageConfigError (not repeating them) when the URL ``value`` embeds credentials."""
    if has_userinfo(value):
        raise StorageConfigError.of(
            f"{what}={redact_url(value)!r}", "holds credentials inside the URL (shown as ***). neo never takes "
            "credentials from URLs or config", f"remove them from the URL and set {_CREDENTIAL_VARIABLES} in the "
            "environment")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid S3 bucket name, or None when it is."""
    if not name:
        return "has no bucket name"
    if not _BUCKET_NAME.fullmatch(name) or ".." in name or _IP_ADDRESS.fullmatch(name):
        return (f"has the invalid bucket name {name!r} (bucket names are 3-63 lowercase letters, digits, '-' or '.', "
                "starting and ending with a letter or digit)")
    return None


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.startswith((".", "~"))


def parse_bucket(value: Any, provider: str | None = None, source: str = "storage.bucket") -> str | None:
    """The canonical bucket location of a setting: ``r2|b2|s3://name[/path]``, ``file:///dir``, a local folder,
    or None (no bucket). Raises StorageConfigError naming ``source``, the value and the fix.

    provider: ``r2|b2|s3`` (a bare name is that provider's bucket), ``local`` (a bare name is a folder) or None
        (no provider chosen: a bare name is ambiguous and refused; paths are folders).
    """
    remote = provider in REMOTE_SCHEMES
    if value is None or (isinstance(value, str) and not value.strip()):
        if remote:  # never a default bucket name: pushes to a bucket someone else named the same would be refused
            given, state, env = ((source, "is not set,", "NEO_BUCKET=<name> sets it too") if value is None else
                                 (f"{source}={value!r}", "is empty", "NEO_BUCKET=<name> sets it; it may be set but empty"))
            raise StorageConfigError.of(
                given, f"{state} but storage={provider} needs a bucket",
                f"{source}=<name> or {source}={provider}://<name> ({env}), or storage=local for a local folder")
        return None
    if not isinstance(value, str):
        raise StorageConfigError(problem(source, value, "is not a URL or folder",
                                         "use e.g. r2://my-bucket or a folder such as ./data/bucket"))
    text = value.strip()
    refuse_userinfo(text, source)
    match = _SCHEME.fullmatch(text)
    if match:
        return _parse_url(text, match.group(1).lower(), match.group(2), provider, source)
    if remote:
        if _looks_like_path(text):
            raise StorageConfigError(problem(
                source, value, f"is a folder but storage={provider} stores in a {provider} bucket",
                f"{source}=<bucket-name> for the bucket, or storage=local {source}={text} for a local folder"))
        wrong = bucket_name_problem(text)
        if wrong:
            raise StorageConfigError(problem(source, value, wrong,
                                             f"{source}=<bucket-name> as the bucket is named at {provider}"))
        return f"{provider}://{text}"
    if provider is None and not _looks_like_path(text):
        raise StorageConfigError(problem(
            source, value, "is a bare name, but no provider says which storage it is in",
            f"give the URL (r2://{text}, b2://{text} or s3://{text}), or write ./{text} for a local folder"))
    folder = text.rstrip("/") or "/"
    return folder if provider == "local" or _looks_like_path(folder) else f"./{folder}"  # stays a path when re-parsed


def _parse_url(text: str, scheme: str, rest: str, provider: str | None, source: str) -> str:
    if not rest.startswith("//"):
        fixed = f"{scheme}://{rest.lstrip('/') or '<bucket-name>'}"
        raise StorageConfigError(problem(source, text, f"is not a URL: the scheme {scheme!r} needs '://'",
                                         f"{source}={fixed}"))
    if scheme not in (*REMOTE_SCHEMES, "file"):
        raise StorageConfigError(problem(
            source, text, f"uses an unknown storage scheme {scheme!r}", "use r2://<bucket> (storage=r2), "
            "b2://<bucket> (storage=b2), s3://<bucket> (storage=s3), file:///dir or a local folder"))
    body = rest[2:]
    if scheme == "file":
        host, slash, path = body.partition("/")
        if host not in ("", "localhost") or not path.strip("/"):
            raise StorageConfigError(problem(source, text, "is not a local folder URL", "file:///absolute/folder"))
        return "file:///" + path.strip("/")
    if provider in REMOTE_SCHEMES and provider != scheme:
        raise StorageConfigError(problem(source, text, f"is a {scheme} bucket but storage={provider}",
                                         f"storage={scheme}, or {source}={provider}://<bucket-name>"))
    name, _, path = body.partition("/")
    wrong = bucket_name_problem(name)
    if wrong:
        raise StorageConfigError(problem(source, text, wrong, f"{source}={scheme}://<bucket-name>"))
    path = path.rstrip("/")
    if path:
        try:
            check_key(path)
        except StorageConfigError as exc:
            raise StorageConfigError(f"{source}={text!r}: {exc}") from None
    return f"{scheme}://{name}" + (f"/{path}" if path else "")


EMPTY_NEO_BUCKET = render("NEO_BUCKET=''", "is set but empty",
                          "unset it, or set it to the bucket (r2://team-weights, or a folder such as ./data/bucket)")


def bucket_from_env(default: str | None = None) -> str | None:
    """``$NEO_BUCKET`` (``default`` when unset); set but empty is an error, never "no bucket"."""
    if "NEO_BUCKET" not in os.environ:
        return default
    value = os.environ["NEO_BUCKET"]
    if not value.strip():
        raise StorageConfigError(EMPTY_NEO_BUCKET)
    return value


def _from_neo_bucket(value: Any) -> bool:
    """True when a ``storage=local`` bucket value is ``$NEO_BUCKET`` (conf/storage/local.yaml reads it)."""
    return "NEO_BUCKET" in os.environ and (value is None or str(value) == os.environ["NEO_BUCKET"])


def join_key(*parts: str) -> str:
    """Join key parts with '/', skipping empty ones, after checking each part is safe."""
    cleaned = [check_key(p).strip("/") for p in parts if p and p.strip("/")]
    return "/".join(cleaned)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


_NUMBERS = (("retries", 0, False, 3), ("backoff_s", 0, False, 0.5), ("lock_timeout_s", 0, True, 900),
            ("drain_timeout_s", 0, False, 120), ("upload_timeout_s", 0, True, 600), ("lease_stale_s", 0, True, 600))


@dataclass
class StorageSettings:
    """Where neo keeps weights and checkpoints. Invalid values raise StorageConfigError naming each of them.

    provider: ``local`` | ``r2`` | ``b2`` | ``s3`` (the ``storage=`` choice) or None; it says what a bare
        bucket name means (see ``parse_bucket``).
    bucket: bucket root URL (``r2://name``, ``b2://name``, ``s3://name``, ``file:///dir``), a bare bucket name
        with provider r2/b2/s3, or a local folder; None means no bucket (cache and origins only).
        Stored canonical: ``r2://name`` for a bare r2 name.
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
    require: a fresh run whose bucket cannot be listed (down, no credentials) does not train (False: it trains,
        its summary says the bucket was not checked, and it never replaces an object it did not write).
    takeover: take over a run's bucket prefix whose lease is stale (no heartbeat for ``lease_stale_s``).
    lease_stale_s: a run's lease (``runs/{run}/lease.json``) with no heartbeat for this long is stale; the owner
        renews it every tenth of it.
    """

    bucket: str | None = None
    provider: str | None = None
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
    require: bool = True
    takeover: bool = False
    lease_stale_s: float = 600.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        source = "storage.bucket"
        if self.provider == "local" and _from_neo_bucket(self.bucket):
            # NEO_BUCKET means what it means to neo-weights/neo-export: a URL names its provider, a path is a
            # folder, a bare name is ambiguous (refused with the fix), set but empty is an error
            source, self.provider = "NEO_BUCKET", None
        if self.provider is not None and self.provider not in PROVIDERS:
            problems.append(problem("storage.provider", self.provider, "is not a storage provider",
                                    f"use one of {', '.join(PROVIDERS)} (storage=r2 etc. sets it)"))
        else:
            try:
                if source == "NEO_BUCKET" and not str(self.bucket or "").strip():
                    raise StorageConfigError(EMPTY_NEO_BUCKET)
                self.bucket = parse_bucket(self.bucket, self.provider, source)
            except StorageConfigError as exc:
                problems.append(str(exc))
            if source == "NEO_BUCKET" and self.bucket:
                self.provider = "local" if "://" not in self.bucket or self.bucket.startswith("file://") \
                    else self.bucket.split("://", 1)[0]
        try:
            self.prefix = join_key(str(self.prefix or ""))
        except StorageConfigError as exc:
            problems.append(f"storage.prefix: {exc}")
        for name, low, strict, example in _NUMBERS:
            value = getattr(self, name)
            if name == "upload_timeout_s" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (strict and value == low):
                problems.append(problem(f"storage.{name}", value, f"must be a number {'>' if strict else '>='} {low}",
                                        f"use e.g. storage.{name}={example}"))
        if not isinstance(self.storage_options, Mapping):
            problems.append(problem("storage.storage_options", self.storage_options, "is not a mapping", "use {}"))
        else:
            bad = sorted(str(k) for k in self.storage_options if str(k).lower() in _SECRET_OPTIONS)
            if bad:  # never echo the value of a secret
                problems.append(render("storage.storage_options", f"holds secret option(s) {bad} (values not shown)",
                                       f"remove them and set {_CREDENTIAL_VARIABLES} in the environment"))
        if problems:
            raise StorageConfigError(" ".join(problems))
        self.cache_dir = Path(os.path.expandvars(str(self.cache_dir))).expanduser()
        self.offline = _as_bool(self.offline)
        self.require = _as_bool(self.require)
        self.takeover = _as_bool(self.takeover)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> StorageSettings:
        """Build from ``cfg.storage`` (a DictConfig or dict): the validation entry point of storage settings.

        Raises StorageConfigError, one message naming every invalid key/value and its fix (unknown keys too).
        """
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
            raise StorageConfigError.of("storage", f"has unknown key(s) {unknown}",
                                        f"remove them; valid keys are {sorted(known)}")
        values["storage_options"] = values.get("storage_options") or {}
        if isinstance(values["storage_options"], Mapping):
            values["storage_options"] = dict(values["storage_options"])
        return cls(**values)

    @classmethod
    def from_env(cls, bucket: str | None = None, *, default_bucket: str | None = None, **values: Any) -> StorageSettings:
        """Settings for the command-line tools: ``bucket`` if given, else ``$NEO_BUCKET``, else ``default_bucket``;
        prefix ``$NEO_PREFIX`` and cache ``$NEO_CACHE_DIR`` unless given in ``values``."""
        values.setdefault("prefix", os.environ.get("NEO_PREFIX", ""))
        if os.environ.get("NEO_CACHE_DIR"):
            values.setdefault("cache_dir", os.environ["NEO_CACHE_DIR"])
        if bucket is None and "NEO_BUCKET" in os.environ:  # errors name the variable the value came from
            bucket = parse_bucket(bucket_from_env(), values.get("provider"), "NEO_BUCKET")
        return cls(bucket=bucket if bucket is not None else default_bucket, **values)

    @property
    def is_offline(self) -> bool:
        """Offline by setting or by ``NEO_OFFLINE`` (read at call time)."""
        return self.offline or env_offline()

    @property
    def offline_remote(self) -> bool:
        """Offline with a remote (r2/b2/s3) bucket: the bucket can be neither read nor written. A local folder
        bucket stays usable offline."""
        return self.is_offline and self.protocol in REMOTE_SCHEMES

    @property
    def protocol(self) -> str | None:
        """``r2``, ``b2``, ``s3``, ``file`` ... of the bucket, or None without a bucket."""
        if not self.bucket:
            return None
        return self.bucket.split("://", 1)[0] if "://" in self.bucket else "file"

    def bucket_fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """The bucket's file system and its root path (protocol stripped, prefix included)."""
        if not self.bucket:
            raise StorageConfigError("No bucket configured: set storage.bucket (e.g. r2://my-bucket or a local folder).")
        fs, root = fsspec.core.url_to_fs(self.bucket, **self.storage_options)
        from neo.storage.protocols import ensure_endpoint_resolves

        ensure_endpoint_resolves(fs)
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
