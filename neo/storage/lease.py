"""A run's bucket prefix has one owner: the lease object ``runs/{run}/lease.json``.

The lease holds the owner's run id (a fresh uuid per process), host, pid, SLURM job id, start time and heartbeat.
- :meth:`RunLease.acquire` creates it with a conditional put (``If-None-Match: *``): of two runs starting
  together exactly one wins, the other gets :class:`LeaseHeld` naming the owner, before it trains. A local
  folder bucket uses an exclusive create (``O_CREAT | O_EXCL``), which is atomic on one file system.
- The owner renews the heartbeat every ``lease_stale_s / 10`` with a conditional replace (``If-Match``: its
  own ETag); a lease it no longer owns is never rewritten and ``owned`` turns False (its pushes stop).
- A lease is free to take when it is stale (no heartbeat for ``lease_stale_s``) *and* the user says so
  (``storage.takeover=true``), or when its owner is provably gone: the same host with that pid no longer
  alive, or the same SLURM job (a requeue). Taking over is a conditional replace of the ETag that was read,
  so two takers cannot both win.
- :meth:`RunLease.release` deletes it at the end of the run when it is still this run's.

Stores that do not implement conditional writes answer ``501 NotImplemented``: neo then checks, writes, and
reads the lease back (the last writer wins and the other run sees it at its next heartbeat, stopping its
pushes); :attr:`RunLease.conditional` says which was used. A store that silently ignored the headers would
behave the same way: every heartbeat and every push first reads the lease and stops when it names another run. The moto test server, S3,
R2 and B2 implement ``If-None-Match: *`` and ``If-Match`` on PutObject.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from s3fs import S3FileSystem

from neo.storage.settings import StorageSettings, join_key

log = logging.getLogger(__name__)
LEASE_NAME = "lease.json"


class LeaseHeld(RuntimeError):
    """The run's bucket prefix is owned by another live (or not yet stale) run; the message names it."""


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Owner:
    """What a lease says about its owner."""

    run_id: str
    host: str
    pid: int
    started: float
    heartbeat: float
    slurm_job: str | None = None

    @classmethod
    def parse(cls, raw: bytes) -> Owner | None:
        try:
            data = json.loads(raw)
            return cls(str(data["run_id"]), str(data["host"]), int(data["pid"]), float(data["started"]),
                       float(data["heartbeat"]), data.get("slurm_job"))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self, now: float) -> str:
        return (f"run {self.run_id[:8]} on host {self.host!r} (pid {self.pid}"
                + (f", SLURM job {self.slurm_job}" if self.slurm_job else "")
                + f"), started {_iso(self.started)}, last heartbeat {_iso(self.heartbeat)} ({now - self.heartbeat:.0f} s ago)")


def _slurm_job() -> str | None:
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else job


class RunLease:
    """The lease of ``runs/{run_name}/`` in ``settings``' bucket (acquire, heartbeat thread, release)."""

    def __init__(self, settings: StorageSettings, run_name: str):
        self.settings = settings
        self.run_name = run_name
        self.key = join_key("runs", run_name, LEASE_NAME)
        self.url = settings.url(self.key)
        self.owner = Owner(uuid.uuid4().hex, socket.gethostname(), os.getpid(), time.time(), time.time(), _slurm_job())
        self.owned = False
        self.conditional = True  # False when the store refused conditional writes (check-then-write fallback)
        self.took_over: str | None = None  # the previous owner, when its lease was taken over
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fs, root = settings.bucket_fs()
        self._rpath = f"{root}/{self.key}"

    # -- store operations ----------------------------------------------------------------------------
    def _body(self) -> bytes:
        return json.dumps(self.owner.__dict__, indent=1).encode()

    def _read(self) -> tuple[Owner | None, str | None, bool]:
        """(owner, etag, exists) of the stored lease."""
        fs = self._fs
        try:
            if isinstance(fs, S3FileSystem):
                fs.invalidate_cache(self._rpath)
                info = fs.info(self._rpath)
                raw = fs.cat_file(self._rpath)
                return Owner.parse(raw), str(info.get("ETag") or ""), True
            with open(self._rpath, "rb") as f:
                raw = f.read()
            st = os.stat(self._rpath)
            return Owner.parse(raw), f"{st.st_mtime_ns}-{st.st_size}", True
        except FileNotFoundError:
            return None, None, False

    def _create(self) -> bool:
        """Write the lease only if none exists; False when one does."""
        fs = self._fs
        if isinstance(fs, S3FileSystem):
            if self.conditional:
                try:
                    fs.pipe_file(self._rpath, self._body(), IfNoneMatch="*")
                except FileExistsError:
                    return False
                except Exception as exc:  # noqa: BLE001 - a store without conditional writes
                    if not _not_implemented(exc):
                        raise
                    self._fallback(exc)
                    return self._create()
            else:
                if self._read()[2]:
                    return False
                fs.pipe_file(self._rpath, self._body())
            return self._confirm()
        if not isinstance(fs, LocalFileSystem):  # pragma: no cover - neo's buckets are S3-compatible or folders
            raise TypeError(f"no lease for a {type(fs).__name__} bucket")
        os.makedirs(os.path.dirname(self._rpath), exist_ok=True)
        try:
            fd = os.open(self._rpath, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(self._body())
        return self._confirm()

    def _replace(self, etag: str | None) -> bool:
        """Rewrite the lease only if it still has ``etag``; False when someone else changed it."""
        fs = self._fs
        if isinstance(fs, S3FileSystem):
            if self.conditional and etag:
                try:
                    fs.pipe_file(self._rpath, self._body(), IfMatch=etag)
                except (FileExistsError, FileNotFoundError):
                    return False
                except Exception as exc:  # noqa: BLE001
                    if "PreconditionFailed" in str(exc) or "412" in str(exc):
                        return False
                    if not _not_implemented(exc):
                        raise
                    self._fallback(exc)
                    return self._replace(etag)
            else:
                if self._read()[1] != etag:
                    return False
                fs.pipe_file(self._rpath, self._body())
            return self._confirm()
        if self._read()[1] != etag:
            return False
        tmp = f"{self._rpath}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(self._body())
        os.replace(tmp, self._rpath)
        return self._confirm()

    def _confirm(self) -> bool:
        """Read the lease back: True (and its ETag kept) when it is this run's."""
        owner, etag, _ = self._read()
        self._etag = etag
        return owner is not None and owner.run_id == self.owner.run_id

    def _fallback(self, exc: BaseException) -> None:
        self.conditional = False
        log.warning("%s does not implement conditional writes (%s): the lease of run %r is checked, written and read "
                    "back instead; two runs starting in the same instant can both pass, and the loser stops pushing "
                    "at its first heartbeat.", self.settings.bucket, str(exc).splitlines()[0][:120], self.run_name)

    # -- public ---------------------------------------------------------------------------------------
    def acquire(self) -> RunLease:
        """Own the run's prefix or raise LeaseHeld naming the owner and the ways on."""
        for _ in range(3):  # a lease deleted between our create and read: try again
            if self._create():
                self.owned = True
                break
            current, etag, exists = self._read()
            if not exists:
                continue
            now = time.time()
            gone = self._owner_gone(current)
            stale = current is None or now - current.heartbeat > self.settings.lease_stale_s
            if gone or (stale and self.settings.takeover):
                if self._replace(etag):
                    self.owned = True
                    self.took_over = current.describe(now) if current else "an unreadable lease"
                    log.warning("Took over %s from %s (%s).", self.url, self.took_over,
                                gone or "stale, storage.takeover=true")
                    break
                continue  # another taker won the race: read again
            raise LeaseHeld(self._held_message(current, stale))
        else:
            raise LeaseHeld(f"could not take {self.url}: it kept changing while neo read it. Run the command again.")
        self._start_heartbeat()
        return self

    def _held_message(self, current: Owner | None, stale: bool) -> str:
        who = current.describe(time.time()) if current else "an unreadable lease"
        if stale:
            way = (f"it has had no heartbeat for more than storage.lease_stale_s={self.settings.lease_stale_s:g} s: "
                   f"if that run is gone, take it over with storage.takeover=true")
        else:
            way = (f"wait for it to finish (then continue it with ckpt_path=auto), or use another run_name; if that "
                   f"run is really gone, its lease turns stale {self.settings.lease_stale_s:g} s after its last "
                   f"heartbeat (storage.lease_stale_s) and storage.takeover=true then takes it over")
        return (f"run {self.run_name!r} is owned by another run: {self.url} names {who}. Two runs with one run_name "
                f"would mix their checkpoints in the bucket, so this one does not start. Ways on: {way}.")

    def check_free(self) -> None:
        """Raise LeaseHeld (naming the owner) when acquiring would be refused; writes nothing."""
        current, _, exists = self._read()
        if not exists:
            return
        stale = current is None or time.time() - current.heartbeat > self.settings.lease_stale_s
        if self._owner_gone(current) or (stale and self.settings.takeover):
            return
        raise LeaseHeld(self._held_message(current, stale))

    def _owner_gone(self, current: Owner | None) -> str:
        """Why the stored owner is provably gone ("" when it may be alive)."""
        if current is None:
            return ""
        if current.host == self.owner.host and current.pid != self.owner.pid and not _pid_alive(current.pid):
            return f"its process {current.pid} on this host has ended"
        if current.slurm_job and current.slurm_job == self.owner.slurm_job:
            return f"the same SLURM job {current.slurm_job} was requeued"
        return ""

    def still_owned(self) -> bool:
        """Read the lease: is it still this run's? (updates ``owned``)."""
        if not self.owned:
            return False
        try:
            current, _, _ = self._read()
        except Exception as exc:  # noqa: BLE001 - the bucket is unreachable: nothing is pushed meanwhile anyway
            log.debug("Could not read %s: %s", self.url, exc)
            return True
        if current is None or current.run_id != self.owner.run_id:
            self._lost(current)
        return self.owned

    def _lost(self, current: Owner | None) -> None:
        if self.owned:
            who = current.describe(time.time()) if current else "nobody (it was deleted)"
            log.error("Run %r no longer owns %s: it now names %s. This run's checkpoints stay local and are no longer "
                      "pushed.", self.run_name, self.url, who)
        self.owned = False

    def heartbeat(self) -> None:
        """Renew the heartbeat (conditional on the lease being unchanged since this run wrote it)."""
        if not self.owned:
            return
        self.owner.heartbeat = time.time()
        try:  # read first: a store that ignores If-Match must not let this run overwrite another's lease
            if not self.still_owned() or not self._replace(self._etag):
                self._lost(self._read()[0])
        except Exception as exc:  # noqa: BLE001 - an outage: try again at the next beat
            log.warning("Could not renew the lease %s (%s); retrying at the next heartbeat.", self.url,
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)

    def _start_heartbeat(self) -> None:
        interval = max(self.settings.lease_stale_s / 10, 0.2)

        def beat() -> None:
            while not self._stop.wait(interval):
                self.heartbeat()

        self._thread = threading.Thread(target=beat, name="neo-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.owned:
            return
        try:
            current, _, _ = self._read()
            if current is not None and current.run_id == self.owner.run_id:
                self._fs.rm_file(self._rpath)
                if isinstance(self._fs, S3FileSystem):
                    self._fs.invalidate_cache(os.path.dirname(self._rpath))
        except Exception as exc:  # noqa: BLE001 - a leftover lease turns stale; the same host/job takes it back
            log.warning("Could not release the lease %s (%s).", self.url, exc)
        self.owned = False

    def state(self) -> dict[str, Any]:
        """Picklable identity (for the checkpoint plugin in spawned processes)."""
        return {"run_id": self.owner.run_id, "url": self.url}


def _not_implemented(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return "NotImplemented" in text or "501" in text or "not implemented" in text.lower()
