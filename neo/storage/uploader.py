"""BackgroundUploader: one worker thread that uploads/deletes bucket objects in order, retrying, never raising.

Used for checkpoint sync and for pushing weights fetched from their original source to the bucket.
Jobs run FIFO, so a delete queued after an upload of the same object runs after it (or cancels it
if it has not started). ``drain(timeout)`` waits a bounded time and returns what is not synced.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fsspec
import fsspec.asyn

from neo.storage.errors import access_hint, classify
from neo.storage.transfer import upload

log = logging.getLogger(__name__)


def _lower_priority() -> None:
    """Nice the calling thread (Linux threads are tasks) so background transfers yield the CPU to training."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


@dataclass
class _Job:
    kind: str  # "upload" | "delete"
    fs: fsspec.AbstractFileSystem
    rpath: str
    label: str  # URL shown in logs (no credentials)
    local: Path | None = None
    cleanup: bool = False  # delete ``local`` once done (a staged hard link)
    attempts: int = 0
    precheck: Callable[[_Job], None] | None = None  # raises ReplaceRefused: the job is dropped, never retried
    on_done: Callable[[_Job], None] | None = None


class ReplaceRefused(RuntimeError):
    """An upload or delete would replace a bucket object this run did not write; the message says which and why."""


class BackgroundUploader:
    """Upload and delete bucket objects on a daemon thread; failures are logged and retried."""

    def __init__(self, retries: int = 4, backoff_s: float = 1.0, name: str = "neo-upload",
                 timeout_s: float | None = None):
        self.retries = retries
        self.timeout_s = timeout_s  # per upload attempt (see neo.storage.transfer.upload)
        self.backoff_s = backoff_s
        self.name = name
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._current: _Job | None = None
        self._thread: threading.Thread | None = None
        self.failed: list[str] = []
        self.refused: list[str] = []  # one message per object this uploader refused to replace or delete
        self.done: list[str] = []

    # -- submitting ---------------------------------------------------------------------------
    def submit_upload(self, fs, local: Path, rpath: str, *, label: str, cleanup: bool = False,
                      precheck: Callable[[_Job], None] | None = None,
                      on_done: Callable[[_Job], None] | None = None) -> None:
        """Queue ``local`` -> ``rpath``; a not-yet-started upload of the same object is replaced.
        ``precheck(job)`` runs right before each attempt: ReplaceRefused drops the job with one error."""
        self._submit(_Job("upload", fs, rpath, label, Path(local), cleanup, precheck=precheck, on_done=on_done),
                     replace=True)

    def submit_delete(self, fs, rpath: str, *, label: str, precheck: Callable[[_Job], None] | None = None,
                      on_done: Callable[[_Job], None] | None = None) -> None:
        """Queue deleting ``rpath`` (and its sidecar); cancels a not-yet-started upload of it."""
        self._submit(_Job("delete", fs, rpath, label, precheck=precheck, on_done=on_done), replace=True)

    def _submit(self, job: _Job, replace: bool) -> None:
        with self._cond:
            if replace:
                for old in [j for j in self._jobs if j.rpath == job.rpath]:
                    self._jobs.remove(old)
                    self._cleanup(old)
            self._jobs.append(job)
            self._ensure_thread()
            self._cond.notify_all()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    # -- worker -------------------------------------------------------------------------------
    def _run(self) -> None:
        _lower_priority()  # hashing here, and the fsspec IO thread that sends the bytes, yield to training
        try:
            fsspec.asyn.get_loop().call_soon_threadsafe(_lower_priority)
        except Exception:  # noqa: BLE001 - only an optimisation
            pass
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                job = self._jobs.popleft()
                self._current = job
            ok = self._attempt(job)
            with self._cond:
                self._current = None
                if ok is None:  # retry later, keep order for this object
                    self._jobs.appendleft(job)
                self._cond.notify_all()
            if ok is None:
                time.sleep(self.backoff_s * 2 ** (job.attempts - 1))

    def _attempt(self, job: _Job) -> bool | None:
        """True done, False given up, None retry."""
        try:
            if job.precheck is not None:
                job.precheck(job)
            if job.kind == "upload":
                uploaded = upload(job.local, job.fs, job.rpath, timeout_s=self.timeout_s)
                log.info("%s %s", "Uploaded" if uploaded else "Already in bucket:", job.label)
            else:
                for path in (job.rpath, job.rpath + ".sha256"):
                    try:
                        job.fs.rm_file(path)
                    except FileNotFoundError:
                        pass
                job.fs.invalidate_cache(os.path.dirname(job.rpath))
                log.info("Deleted %s", job.label)
            self.done.append(job.label)
            if job.on_done is not None:
                job.on_done(job)
            self._cleanup(job)
            return True
        except ReplaceRefused as exc:
            log.error("%s", exc)
            self.refused.append(str(exc))
            self.failed.append(job.label)
            self._cleanup(job)
            return False
        except Exception as exc:  # noqa: BLE001 - never let a bucket error reach training
            job.attempts += 1
            reason = classify(exc)
            detail = str(exc) or type(exc).__name__  # FSTimeoutError (an upload bounded by timeout_s) has no text
            if job.attempts > self.retries:
                hint = access_hint(exc, job.label.split("://", 1)[0] if "://" in job.label else None)
                log.error("Giving up %s of %s after %d attempts (%s: %s)%s", job.kind, job.label, job.attempts, reason,
                          detail, f" {hint}" if hint else "")
                self.failed.append(job.label)
                self._cleanup(job)
                return False
            log.warning("%s of %s failed (%s: %s); retry %d/%d", job.kind.capitalize(), job.label, reason, detail,
                        job.attempts, self.retries)
            return None

    @staticmethod
    def _cleanup(job: _Job) -> None:
        if job.cleanup and job.local is not None:
            job.local.unlink(missing_ok=True)

    # -- state ----------------------------------------------------------------------------------
    def pending(self) -> list[str]:
        """Labels of jobs queued or running."""
        with self._cond:
            current = [self._current.label] if self._current else []
            return current + [j.label for j in self._jobs]

    def clear(self) -> list[str]:
        """Drop queued jobs (not the running one) and the failure list; return the dropped labels."""
        with self._cond:
            dropped = [j.label for j in self._jobs]
            for job in self._jobs:
                self._cleanup(job)
            self._jobs.clear()
            self.failed.clear()
            return dropped

    def drain(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` s for the queue to empty; warn and return what is not synced."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jobs or self._current:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        unsynced = self.pending() + list(self.failed)
        if unsynced:
            log.warning("Not synced to the bucket after %.0fs: %s", timeout, ", ".join(unsynced))
        return unsynced


_SHARED: BackgroundUploader | None = None
_SHARED_LOCK = threading.Lock()
_EXIT_TIMEOUT = [120.0]


def shared_uploader(drain_timeout_s: float | None = None) -> BackgroundUploader:
    """The process-wide uploader (origin weights -> bucket), drained at exit with a bounded wait."""
    global _SHARED
    with _SHARED_LOCK:
        if drain_timeout_s is not None:
            _EXIT_TIMEOUT[0] = drain_timeout_s
        if _SHARED is None:
            _SHARED = BackgroundUploader(name="neo-weights-upload")
            atexit.register(lambda: _SHARED.drain(_EXIT_TIMEOUT[0]) if _SHARED else None)
        return _SHARED
