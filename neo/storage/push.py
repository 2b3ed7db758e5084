"""Guarded uploads of local files to the bucket (``neo-weights push`` / ``upload``): the same retry, error and
verification rules as downloads.

- Only transient failures (network, a corrupt transfer, an unclassified error) are retried, with backoff.
- Anything else fails at once as a ``StorageAccessError``: one paragraph naming the bucket URL, the key,
  the reason and the environment variables to check (never their values).
- "Already in the bucket" means the object's trustworthy recorded sha256 equals the file's sha256; sizes
  are never compared. A damaged or contradictory record is replaced. When the object was stored in one
  part, S3 gives its MD5 as the ETag: an ETag that differs from the file's MD5 means the bytes were altered
  behind an intact record, and the object is replaced. ``force`` uploads regardless (multipart objects,
  whose ETag is not an MD5 of the bytes, are repaired this way).
- After an upload the recorded sha256 and the size are read back; a mismatch is retried.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from fsspec.callbacks import DEFAULT_CALLBACK, Callback

from neo.storage.credentials import CREDENTIAL_HINTS
from neo.storage.errors import (
    CorruptDownloadError,
    HashRecordError,
    OfflineError,
    StorageAccessError,
    StorageConfigError,
    access_hint,
    classify,
)
from neo.storage.settings import StorageSettings, join_key
from neo.storage.transfer import cached_sha256, remote_matches, remote_sha256, upload, with_retries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushResult:
    """What ``push_file`` did: ``uploaded`` False means the bucket already held these exact bytes' hash."""

    url: str
    uploaded: bool
    sha256: str
    size: int


@dataclass(frozen=True)
class RemoteState:
    """A bucket object as neo sees it: size None when absent; sha256 None when nothing trustworthy is recorded
    (``problem`` then says why, when a record exists but cannot be trusted)."""

    size: int | None
    sha256: str | None
    problem: str = ""


def failure_message(action: str, url: str, exc: BaseException, protocol: str | None) -> str:
    """One paragraph: what failed where, why, and what to do (credential variables named, never their values)."""
    reason = classify(exc)
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
    hint = access_hint(exc, protocol)
    variables = CREDENTIAL_HINTS.get(protocol or "", "the bucket settings")
    if not hint:
        hint = {
            "network": f"The endpoint did not answer after retries: check the connection and the endpoint in "
                       f"{variables}, then run the same command again.",
            "no network": f"Check the connection and the endpoint in {variables}.",
            "invalid request": "Fix the bucket name or key (see the reason above).",
            "not found": "Check the bucket name (--bucket / NEO_BUCKET / storage.bucket) and the key.",
            "unverifiable": "Repair the record: push a good copy with --force.",
            "offline": "Offline mode is on (NEO_OFFLINE=1 or --offline): unset it to reach the bucket.",
        }.get(reason, "Run the same command again; if it keeps failing, check the bucket settings.")
    return f"Could not {action} {url} ({reason}: {detail}). {hint}"


def remote_state(settings: StorageSettings, key: str) -> RemoteState:
    """Size and trustworthy sha256 of ``key`` in the bucket (transient failures retried; others raise
    StorageAccessError with one paragraph)."""
    url = settings.url(key)

    def look() -> RemoteState:
        fs, root = settings.bucket_fs()
        rpath = f"{root}/{key}"
        try:
            size = fs.info(rpath).get("size")
        except FileNotFoundError:
            return RemoteState(None, None)
        try:
            return RemoteState(size, remote_sha256(fs, rpath))
        except HashRecordError as exc:
            return RemoteState(size, None, str(exc))

    return _guarded(look, "read", url, settings)


def push_file(local: Path, key: str, settings: StorageSettings, *, force: bool = False,
              callback: Callback = DEFAULT_CALLBACK) -> PushResult:
    """Upload ``local`` to ``key`` under the bucket prefix with its ``.sha256`` sidecar and sha256 metadata.

    Skips the transfer when the bucket already records this sha256 (unless ``force``); verifies the result.
    Raises StorageConfigError (bad key, no bucket), FileNotFoundError (no such local file), StorageAccessError.
    """
    local = Path(local)
    if not local.is_file():
        raise FileNotFoundError(f"{local} is not a file: give the path of the file to push.")
    if not settings.bucket:
        raise StorageConfigError("No bucket to push to: pass --bucket r2://<name> (or a folder) or set NEO_BUCKET.")
    key = join_key(key)
    url = settings.url(key)
    if settings.is_offline:
        raise StorageAccessError(failure_message("push to", url, OfflineError("offline mode is on"),
                                                 settings.protocol))
    digest = cached_sha256(local)
    size = local.stat().st_size

    def attempt() -> PushResult:
        fs, root = settings.bucket_fs()
        rpath = f"{root}/{key}"
        if not force and remote_matches(fs, rpath, digest) and not single_part_etag_differs(fs, rpath, local):
            return PushResult(url, False, digest, size)
        upload(local, fs, rpath, skip_if_same=False, callback=callback, digest=digest,
               timeout_s=settings.upload_timeout_s)
        fs.invalidate_cache(rpath)
        landed = fs.info(rpath).get("size")
        recorded = remote_sha256(fs, rpath)
        if landed != size or recorded != digest:
            raise CorruptDownloadError(f"{url} landed with {landed} bytes and sha256 {recorded}; "
                                       f"the file has {size} bytes and sha256 {digest}")
        return PushResult(url, True, digest, size)

    return _guarded(attempt, "push to", url, settings)


_MD5_ETAG = re.compile(r'"?([0-9a-fA-F]{32})"?')


def single_part_etag_differs(fs, rpath: str, local: Path) -> bool:
    """True when ``rpath``'s ETag is a plain MD5 (an object stored in one part) that is not ``local``'s MD5:
    the stored bytes differ from the file although the sha256 record matches. False when it cannot tell."""
    fs.invalidate_cache(rpath)
    etag = str(fs.info(rpath).get("ETag") or "")
    match = _MD5_ETAG.fullmatch(etag)
    if not match:
        return False
    with open(local, "rb") as f:
        md5 = hashlib.file_digest(f, "md5").hexdigest()
    if md5 == match.group(1).lower():
        return False
    log.warning("%s records the file's sha256 but its bytes differ (ETag %s, file MD5 %s): replacing it.",
                rpath, match.group(1), md5)
    return True


def _guarded(action, verb: str, url: str, settings: StorageSettings):
    """Run ``action`` with neo's transient-only retries; turn a final failure into one StorageAccessError."""
    try:
        return with_retries(action, f"{verb} {url}", settings.retries, settings.backoff_s)
    except (StorageConfigError, StorageAccessError):
        raise
    except Exception as exc:  # noqa: BLE001 - classified into one paragraph
        raise StorageAccessError(failure_message(verb, url, exc, settings.protocol)) from None
