"""``resolve(identifier) -> Path``: the one way neo turns a weight/checkpoint identifier into a verified local file.

Rules, in order:
1. an existing local path -> itself (a missing absolute or relative-with-folder path is an error);
2. a URL (``r2://``, ``b2://``, ``s3://``, ``file://``, ``https://`` ...) -> cached copy under ``cache_dir/urls/``;
3. a registry name ``framework/name`` -> cache -> bucket ``{prefix}/models/pretrained/{framework}/{file}``
   -> original source (timm, Ultralytics, URL), then a background upload to the bucket;
4. a bare filename -> cache (``cache_dir/checkpoints/``, ``cache_dir/``) -> bucket ``{prefix}/checkpoints/``
   -> the one ``{prefix}/runs/*/checkpoints/`` object of that name.
Offline (``storage.offline`` or ``NEO_OFFLINE=1``) serves only the cache.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import fsspec
from filelock import FileLock
from fsspec.callbacks import DEFAULT_CALLBACK, Callback

from neo.storage.errors import (
    Attempt,
    HashRecordError,
    OfflineError,
    ResolveError,
    StorageConfigError,
    classify,
)
from neo.storage.origins import describe_origin, fetch_origin, origin_url
from neo.storage.protocols import ensure_endpoint_resolves, ensure_host_resolves
from neo.storage.registry import Registry, RegistryEntry
from neo.storage.settings import (
    REMOTE_SCHEMES,
    StorageSettings,
    bucket_name_problem,
    check_key,
    refuse_userinfo,
)
from neo.storage.transfer import (
    cache_entry_ok,
    clean_stale_parts_if_idle,
    download,
    read_local_sidecar,
    remote_sha256,
    remove_stale_parts,
    sha256_file,
    write_local_sidecar,
)
from neo.storage.uploader import shared_uploader

log = logging.getLogger(__name__)
_REGISTRY: Registry | None = None


def default_registry() -> Registry:
    """The packaged registry (``conf/registry/weights.yaml``), loaded once."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry.load()
    return _REGISTRY


def is_url(identifier: str) -> bool:
    scheme = urlsplit(identifier).scheme
    return "://" in identifier and len(scheme) > 1


def resolve(
    identifier: str | os.PathLike,
    *,
    storage: StorageSettings | None = None,
    registry: Registry | None = None,
    refresh: bool = False,
    callback: Callback = DEFAULT_CALLBACK,
) -> Path:
    """Turn ``identifier`` into a verified local file path (see module docstring for the rules).

    refresh: for URLs, re-check the remote sha256 and re-download if the cached copy
        differs (used for ``ckpt_path=auto``, whose ``last.ckpt`` changes between saves).
    Raises ResolveError listing every place tried and why.
    """
    settings = storage or StorageSettings()
    ident = os.fspath(identifier).strip()
    if not ident:
        raise ValueError("Empty weight/checkpoint identifier: pass a path, URL, registry name or file name.")
    local = Path(ident).expanduser()
    if not is_url(ident) and local.is_file():
        return local.resolve()
    if is_url(ident):
        check_url(ident)
        if ident.startswith("file://") and Path(urlsplit(ident).path).is_dir():
            raise IsADirectoryError(f"{ident} is a folder; pass a file.")
        return _resolve_url(ident, settings, refresh, callback)
    registry = registry or default_registry()
    if registry.is_registry_name(ident):
        return _resolve_registry(registry.get(ident), settings, callback)
    if local.is_absolute() or "/" in ident or os.sep in ident:
        near = registry.near_names(ident)
        if near:
            raise ResolveError(ident, [Attempt("registry", "unknown registry name",
                                               f"did you mean {' or '.join(map(repr, near))}? `neo-weights list` "
                                               "shows every name"),
                                       Attempt(str(local), "not found", "no such local file either")])
        raise ResolveError(ident, [Attempt(str(local), "not found", "a path that does not exist; "
                                           "bare file names are looked up in the cache and bucket")])
    return _resolve_filename(ident, settings, callback)


def check_url(url: str) -> None:
    """Refuse, before any request, a URL with credentials in it (not repeating them) or an invalid bucket name."""
    refuse_userinfo(url, "URL")
    scheme, _, rest = url.partition("://")
    if scheme.lower() in REMOTE_SCHEMES:
        bucket, _, key = rest.partition("/")
        problem = bucket_name_problem(bucket)
        if problem:
            raise StorageConfigError.of(repr(url), problem, f"{scheme}://<bucket-name>/<key>")
        check_key(key)


# -- URLs -------------------------------------------------------------------------------------------
_SAFE = "-._~!$&'()*+,;=:@ "  # kept as they are in cache names; '%', '#', '?', '\\' and non-ASCII are %-encoded


def url_cache_path(url: str, settings: StorageSettings) -> Path:
    """``cache_dir/urls/{scheme}/{host-or-bucket}/{path}`` for a URL (refusing '..').

    Every part of the key is kept losslessly: characters a path or URL parser would cut or change (``#``, ``?``,
    ``%``, non-ASCII) are percent-encoded, so two keys never share a cache file.
    """
    scheme, _, rest = url.partition("://")
    key = check_key(rest.lstrip("/") if scheme.lower() == "file" else rest)
    parts = [quote(part, safe=_SAFE) for part in key.split("/") if part]
    return settings.cache_dir.joinpath("urls", scheme.lower(), *parts)


def _resolve_url(url: str, settings: StorageSettings, refresh: bool, callback: Callback) -> Path:
    """A bucket URL (r2/b2/s3) is checked against the bucket's current sha256 on every resolve when online: a
    cached copy of an older version is re-downloaded (an unreachable bucket falls back to the cached copy, with
    a warning). Other URLs are served from the cache once verified there (``refresh`` re-checks them too)."""
    target = url_cache_path(url, settings)
    attempts: list[Attempt] = []
    bucket_url = urlsplit(url).scheme.lower() in REMOTE_SCHEMES
    if cached(target) and (settings.is_offline or not (refresh or bucket_url)):
        return target
    attempts.append(Attempt(f"cache {target}", "not cached" if not target.exists() else "stale or hash mismatch"))
    if settings.is_offline:
        if cache_entry_ok(target):
            return target
        attempts.append(Attempt(url, "skipped (offline)"))
        raise ResolveError(url, attempts, urlsplit(url).scheme)
    try:
        fs, path = fsspec.core.url_to_fs(url)
        ensure_endpoint_resolves(fs)
        if target.exists():
            recorded = remote_sha256(fs, path)
            if recorded is None or recorded != _local_record(target):
                if recorded is not None:
                    log.info("%s changed in the bucket (sha256 %s): fetching it again.", url, recorded)
                target.unlink(missing_ok=True)
        return download(fs, path, target, retries=settings.retries, backoff_s=settings.backoff_s,
                        lock_timeout_s=settings.lock_timeout_s, callback=callback)
    except Exception as exc:  # noqa: BLE001 - reported with the reason
        if classify(exc) in ("network", "no network") and cached(target):
            log.warning("Could not check %s against the bucket (%s); using the cached copy %s, which may be older.",
                        url, classify(exc), target)
            return target
        attempts.append(Attempt(url, classify(exc), _short(exc)))
        raise ResolveError(url, attempts, urlsplit(url).scheme) from exc


def _local_record(target: Path) -> str | None:
    try:
        return read_local_sidecar(target)
    except HashRecordError:
        return None


# -- registry names ---------------------------------------------------------------------------------
def pretrained_cache_path(entry: RegistryEntry, settings: StorageSettings) -> Path:
    return settings.cache_dir / "models" / "pretrained" / entry.framework / entry.file


def _resolve_registry(entry: RegistryEntry, settings: StorageSettings, callback: Callback) -> Path:
    target = pretrained_cache_path(entry, settings)
    if cached(target, entry.sha256):
        return target
    attempts = [Attempt(f"cache {target}", "not cached" if not target.exists() else "hash mismatch")]
    key = settings.pretrained_key(entry.framework, entry.file)
    if _try_bucket(settings, key, target, entry.sha256, attempts, callback):
        return target
    origin = describe_origin(entry)
    if settings.is_offline:
        attempts.append(Attempt(f"origin {origin}", "skipped (offline)"))
        raise ResolveError(entry.name, attempts, settings.protocol)
    if attempts[-1].outcome == "no network":
        attempts.append(Attempt(f"origin {origin}", "skipped (no network)"))
        raise ResolveError(entry.name, attempts, settings.protocol)
    try:
        ensure_host_resolves(origin_url(entry), f"the origin of {entry.name}")
        _fetch_origin_into(entry, target, settings, callback)
    except Exception as exc:  # noqa: BLE001
        attempts.append(Attempt(f"origin {origin}", classify(exc), _short(exc)))
        raise ResolveError(entry.name, attempts, settings.protocol) from exc
    if settings.bucket and settings.upload_origin:
        try:
            fs, root = settings.bucket_fs()
            shared_uploader(settings.drain_timeout_s).submit_upload(
                fs, target, f"{root}/{key}", label=settings.url(key))
        except Exception as exc:  # noqa: BLE001 - the upload never fails the caller
            log.warning("Not uploading %s to the bucket (%s: %s)", entry.name, classify(exc), _short(exc))
    return target


def _fetch_origin_into(entry: RegistryEntry, target: Path, settings: StorageSettings, callback: Callback) -> None:
    """Fetch from the original source under the file lock; verify size/sha256; rename into the cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=settings.lock_timeout_s):
        remove_stale_parts(target)
        if cache_entry_ok(target, entry.sha256):
            return
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
        try:
            fetch_origin(entry, tmp, callback)
            size = tmp.stat().st_size
            if entry.size is not None and size != entry.size:
                raise OSError(f"origin gave {size} bytes, the registry expects {entry.size}")
            digest = sha256_file(tmp)
            if entry.sha256 and digest != entry.sha256:
                raise OSError(f"origin file sha256 {digest} != registry {entry.sha256}")
            Path(str(target) + ".sha256").unlink(missing_ok=True)
            os.replace(tmp, target)
            write_local_sidecar(target, digest)
            log.info("Fetched %s from %s", entry.name, describe_origin(entry))
        finally:
            tmp.unlink(missing_ok=True)


# -- bare file names --------------------------------------------------------------------------------
def _resolve_filename(name: str, settings: StorageSettings, callback: Callback) -> Path:
    check_key(name)
    target = settings.cache_dir / "checkpoints" / name
    flat = settings.cache_dir / name
    for candidate in (target, flat):
        if cached(candidate):
            return candidate
    attempts = [Attempt(f"cache {target}", "not cached"), Attempt(f"cache {flat}", "not cached")]
    key = settings.checkpoint_key(name)
    if _try_bucket(settings, key, target, None, attempts, callback):
        return target
    if settings.bucket and not settings.is_offline and attempts[-1].outcome == "not found":
        try:
            fs, root = settings.bucket_fs()
            runs = sorted(fs.glob(f"{root}/runs/*/checkpoints/{name}"))
            if len(runs) > 1:
                attempts.append(Attempt(settings.url(f"runs/*/checkpoints/{name}"), "ambiguous",
                                        f"{len(runs)} runs have it; pass the full URL"))
            elif runs:
                return download(fs, runs[0], target, retries=settings.retries, backoff_s=settings.backoff_s,
                                lock_timeout_s=settings.lock_timeout_s, callback=callback)
            else:
                attempts.append(Attempt(settings.url(f"runs/*/checkpoints/{name}"), "not found"))
        except Exception as exc:  # noqa: BLE001
            attempts.append(Attempt(settings.url(f"runs/*/checkpoints/{name}"), classify(exc), _short(exc)))
    raise ResolveError(name, attempts, settings.protocol)


# -- shared -----------------------------------------------------------------------------------------
def cached(target: Path, expected_sha256: str | None = None) -> bool:
    """A verified cache hit; temp files of killed downloads of ``target`` are removed on the way."""
    if not cache_entry_ok(target, expected_sha256):
        return False
    clean_stale_parts_if_idle(target)
    return True


def _try_bucket(settings: StorageSettings, key: str, target: Path, expected: str | None,
                attempts: list[Attempt], callback: Callback) -> bool:
    """Download ``key`` from the bucket into ``target``; record the outcome in ``attempts``."""
    if not settings.bucket:
        attempts.append(Attempt("bucket", "not configured", "set storage.bucket"))
        return False
    place = f"bucket {settings.url(key)}"
    if settings.is_offline:
        attempts.append(Attempt(place, "skipped (offline)"))
        return False
    try:
        fs, root = settings.bucket_fs()
        download(fs, f"{root}/{key}", target, expected_sha256=expected, retries=settings.retries,
                 backoff_s=settings.backoff_s, lock_timeout_s=settings.lock_timeout_s, callback=callback)
        return True
    except OfflineError:
        attempts.append(Attempt(place, "skipped (offline)"))
    except Exception as exc:  # noqa: BLE001
        attempts.append(Attempt(place, classify(exc), _short(exc)))
    return False


def _short(exc: BaseException) -> str:
    """The reason of a failure on one line, whole (botocore puts the real reason on the second line)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 600 else text[:597] + "..."
