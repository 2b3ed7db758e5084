"""Verified transfers: sha256 sidecars, atomic locked downloads into the cache, idempotent uploads.

A download lands in a process-unique temp file beside the target, is checked (size against the
source, sha256 against the ``.sha256`` sidecar / object metadata / registry), then ``os.replace``d;
a ``filelock`` around it makes N processes download once (correctness does not depend on the lock).
Temp files of a download killed mid-way (no live lock holder) are removed by the next resolve of the key.

Damage never turns verification off: a sidecar that does not parse is reported and the object's sha256
metadata is used instead; with no trustworthy record left, or two records that disagree, the file is
refused (``HashRecordError``). The same holds for the cache: an entry whose sidecar is damaged is re-fetched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import fsspec
from filelock import FileLock, Timeout
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.implementations.local import LocalFileSystem
from s3fs import S3FileSystem

from neo.config_problems import render
from neo.files import write_text_atomic
from neo.storage.errors import TRANSIENT, CorruptDownloadError, HashRecordError, classify

log = logging.getLogger(__name__)

SIDECAR = ".sha256"
_HASH_MEMO: dict[str, tuple[tuple[int, int, int], str]] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a local file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cached_sha256(path: Path) -> str:
    """sha256 of ``path``, hashed once per process per (size, mtime, inode)."""
    st = path.stat()
    stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
    memo = _HASH_MEMO.get(str(path))
    if memo and memo[0] == stamp:
        return memo[1]
    digest = sha256_file(path)
    _HASH_MEMO[str(path)] = (stamp, digest)
    return digest


def sidecar_text(digest: str, name: str) -> str:
    """``sha256sum`` format, so ``sha256sum -c file.sha256`` works."""
    return f"{digest}  {name}\n"


def parse_sidecar(text: str | bytes) -> str | None:
    """The hex digest in a sidecar, or None when it is not one."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    token = text.strip().split()[0] if text.strip() else ""
    return token.lower() if len(token) == 64 and all(c in "0123456789abcdefABCDEF" for c in token) else None


def read_local_sidecar(path: Path) -> str | None:
    """The digest in ``path.sha256``; None when there is no sidecar; HashRecordError when it is damaged."""
    sidecar = Path(str(path) + SIDECAR)
    try:
        raw = sidecar.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    digest = parse_sidecar(raw)
    if digest is None:
        raise HashRecordError(f"the cache sidecar {sidecar} is damaged ({len(raw)} bytes, no sha256 in it)")
    return digest


def write_local_sidecar(path: Path, digest: str) -> None:
    """Write ``path.sha256`` atomically."""
    write_text_atomic(Path(str(path) + SIDECAR), sidecar_text(digest, path.name))


def cache_entry_ok(path: Path, expected_sha256: str | None = None) -> bool:
    """True if ``path`` exists and matches its sidecar (and ``expected_sha256``); a file without any
    known hash is adopted (its sidecar written) so later alterations are caught."""
    if not path.is_file():
        return False
    try:
        recorded = read_local_sidecar(path)
    except HashRecordError as exc:
        log.warning("Not trusting %s: %s; re-fetching it.", path, exc)
        return False
    expected = expected_sha256 or recorded
    actual = cached_sha256(path)
    if expected is None:
        write_local_sidecar(path, actual)
        return True
    if actual != expected.lower() or (recorded is not None and recorded != actual):
        log.warning("Cache entry %s does not match its sha256 (%s != %s): re-fetching it.", path, actual, expected)
        return False
    return True


def object_sha256_metadata(fs: fsspec.AbstractFileSystem, rpath: str) -> str | None:
    """The ``sha256`` user metadata of an S3 object as stored (S3 metadata names are case-insensitive); None when
    absent, the object is missing or ``fs`` has no object metadata."""
    if not isinstance(fs, S3FileSystem):
        return None
    try:
        meta = fs.metadata(rpath)
    except FileNotFoundError:
        return None
    return next((str(v) for k, v in meta.items() if k.lower() == "sha256"), None)


def remote_sha256(fs: fsspec.AbstractFileSystem, rpath: str) -> str | None:
    """The trustworthy sha256 recorded at upload (the ``.sha256`` sidecar and/or the object metadata).

    None when neither exists (nothing is known). A damaged sidecar falls back to the metadata, with a
    warning; HashRecordError when no record parses but one exists, or when sidecar and metadata disagree.
    """
    try:
        raw = fs.cat_file(rpath + SIDECAR)
    except FileNotFoundError:
        raw = None
    sidecar = parse_sidecar(raw) if raw is not None else None
    damaged = [f"the sidecar {rpath}{SIDECAR} is damaged ({len(raw)} bytes, no sha256 in it)"] \
        if raw is not None and sidecar is None else []
    stored = object_sha256_metadata(fs, rpath)
    metadata = parse_sidecar(stored) if stored is not None else None
    if stored is not None and metadata is None:
        damaged.append(f"the sha256 metadata of {rpath} is damaged ({stored[:80]!r})")
    if sidecar and metadata and sidecar != metadata:
        raise HashRecordError(f"{rpath}: its sidecar records sha256 {sidecar} but its metadata records {metadata}")
    digest = sidecar or metadata
    if digest and damaged:
        log.warning("%s; using the other record (sha256 %s).", "; ".join(damaged), digest)
    elif damaged:
        raise HashRecordError("; ".join(damaged) + " and no other sha256 is recorded, so its bytes cannot be verified")
    return digest


def remove_stale_parts(target: Path) -> list[Path]:
    """Delete temp files of earlier downloads of ``target`` (call while holding ``target``'s lock: every writer
    holds it, so any temp file found belongs to a process that died); returns what was removed."""
    stale = [p for p in target.parent.glob(f".{target.name}.*.part") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
        log.info("Removed %s, left by a download that did not finish.", path)
    return stale


def clean_stale_parts_if_idle(target: Path) -> None:
    """``remove_stale_parts`` when no process holds ``target``'s lock right now (never waits)."""
    if not any(target.parent.glob(f".{target.name}.*.part")):
        return
    try:
        with FileLock(str(target) + ".lock", timeout=0):
            remove_stale_parts(target)
    except Timeout:
        pass  # a live process is downloading it: its temp file is not stale


def with_retries(action: Callable[[], object], what: str, retries: int, backoff_s: float):
    """Run ``action``; on transient errors retry ``retries`` times with doubling backoff."""
    for attempt in range(retries + 1):
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - classified and re-raised
            reason = classify(exc)
            if reason not in TRANSIENT or attempt == retries:
                raise
            delay = backoff_s * 2**attempt
            log.warning("%s failed (%s: %s); retry %d/%d in %.1fs", what, reason, exc, attempt + 1, retries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def download(
    fs: fsspec.AbstractFileSystem,
    rpath: str,
    target: Path,
    *,
    expected_sha256: str | None = None,
    retries: int = 3,
    backoff_s: float = 0.5,
    lock_timeout_s: float = 900.0,
    callback: Callback = DEFAULT_CALLBACK,
) -> Path:
    """Download ``rpath`` from ``fs`` to ``target`` once, verified; return ``target``.

    Raises FileNotFoundError if the object is missing, CorruptDownloadError if it never verifies.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if cache_entry_ok(target, expected_sha256):
        clean_stale_parts_if_idle(target)
        return target
    lock = FileLock(str(target) + ".lock", timeout=lock_timeout_s)
    try:
        with lock:
            remove_stale_parts(target)
            if cache_entry_ok(target, expected_sha256):  # another process finished it meanwhile
                return target
            return with_retries(
                lambda: _download_once(fs, rpath, target, expected_sha256, callback),
                f"download of {rpath}", retries, backoff_s,
            )
    except Timeout as exc:
        raise TimeoutError(f"Waited {lock_timeout_s}s for another process downloading {target}; "
                           f"remove {lock.lock_file} if no download is running.") from exc


def _download_once(fs, rpath: str, target: Path, expected_sha256: str | None, callback: Callback) -> Path:
    info = fs.info(rpath)
    size = info.get("size")
    recorded = remote_sha256(fs, rpath)
    if expected_sha256 and recorded and recorded != expected_sha256.lower():
        raise HashRecordError(f"{rpath}: the bucket records sha256 {recorded} but {expected_sha256} is expected "
                              "(the registry's); it holds another file")
    expected = (expected_sha256 or recorded or "").lower() or None
    if expected is None and isinstance(fs, S3FileSystem):
        raise HashRecordError(render(str(rpath), f"has no sha256 record (no {SIDECAR} sidecar, no sha256 metadata), so "
                                     "its bytes cannot be verified; neo refuses it", "push a good copy with "
                                     "`neo-weights push FILE --as KEY`, which records its sha256"))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
    try:
        if isinstance(fs, S3FileSystem) and size:
            digest = _get_hashing(fs, rpath, tmp, size, callback)
        else:
            fs.get_file(rpath, str(tmp), callback=callback)
            digest = sha256_file(tmp)
        got = tmp.stat().st_size
        if size is not None and got != size:
            raise CorruptDownloadError(f"{rpath}: got {got} bytes, the source declares {size}")
        if expected and digest != expected:
            raise CorruptDownloadError(f"{rpath}: sha256 {digest} != recorded {expected}")
        Path(str(target) + SIDECAR).unlink(missing_ok=True)
        os.replace(tmp, target)
        write_local_sidecar(target, digest)
        st = target.stat()
        _HASH_MEMO[str(target)] = ((st.st_size, st.st_mtime_ns, st.st_ino), digest)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _get_hashing(fs, rpath: str, tmp: Path, size: int, callback: Callback,
                 chunk: int = 50 * 2**20, in_flight: int = 2) -> str:
    """Download ``rpath`` as concurrent ranged reads written and hashed in order; return the sha256.

    Hand-rolled because fsspec's ``get_file`` has no hook to hash while writing: hashing afterwards is a
    second pass over the file. Memory is bounded by ``chunk * in_flight``.
    """
    from concurrent.futures import ThreadPoolExecutor

    callback.set_size(size)
    digest = hashlib.sha256()
    starts = list(range(0, size, chunk))
    with open(tmp, "wb") as out, ThreadPoolExecutor(in_flight) as pool:
        fetch = lambda start: fs.cat_file(rpath, start=start, end=min(start + chunk, size))  # noqa: E731
        pending = [pool.submit(fetch, start) for start in starts[:in_flight]]
        for i in range(len(starts)):
            data = pending[i].result()
            if i + in_flight < len(starts):
                pending.append(pool.submit(fetch, starts[i + in_flight]))
            pending[i] = None
            if len(data) != min(chunk, size - starts[i]):
                raise CorruptDownloadError(f"{rpath}: short read at byte {starts[i]}")
            out.write(data)
            digest.update(data)
            callback.relative_update(len(data))
    return digest.hexdigest()


def remote_matches(fs: fsspec.AbstractFileSystem, rpath: str, digest: str) -> bool:
    """True when ``rpath`` exists and its trustworthy recorded sha256 is ``digest`` (hashes, never sizes).
    A damaged or contradictory record is not a match: the object gets re-uploaded."""
    try:
        if remote_sha256(fs, rpath) != digest:
            return False
    except HashRecordError as exc:
        log.warning("Replacing %s: %s.", rpath, exc)
        return False
    return fs.exists(rpath)


def upload(
    local: Path,
    fs: fsspec.AbstractFileSystem,
    rpath: str,
    *,
    skip_if_same: bool = True,
    callback: Callback = DEFAULT_CALLBACK,
    digest: str | None = None,
    timeout_s: float | None = None,
) -> bool:
    """Upload ``local`` to ``rpath`` with a ``.sha256`` sidecar (and S3 metadata); False if it was already there.

    timeout_s: bound on the S3 transfer (None: 120 s + 1 s per MiB); FSTimeoutError when exceeded. A
    connection that dies mid-PUT can otherwise leave aiohttp waiting forever for a '100 Continue'.
    """
    digest = digest or cached_sha256(Path(local))
    if skip_if_same and remote_matches(fs, rpath, digest):
        return False
    if isinstance(fs, LocalFileSystem):  # local buckets: temp + rename, so readers never see a partial object
        parent = os.path.dirname(rpath)
        fs.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(rpath)}.{uuid.uuid4().hex}.part")
        try:
            fs.put_file(str(local), tmp, callback=callback)
            os.replace(tmp, rpath)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    elif isinstance(fs, S3FileSystem):
        timeout = timeout_s or 120 + Path(local).stat().st_size / 2**20
        fs.put_file(str(local), rpath, callback=callback, Metadata={"sha256": digest}, timeout=timeout)
    else:
        fs.put_file(str(local), rpath, callback=callback)
    if isinstance(fs, S3FileSystem):
        fs.pipe_file(rpath + SIDECAR, sidecar_text(digest, os.path.basename(rpath)).encode(), timeout=timeout_s or 120)
    else:
        fs.pipe_file(rpath + SIDECAR, sidecar_text(digest, os.path.basename(rpath)).encode())
    fs.invalidate_cache(os.path.dirname(rpath))
    return True
