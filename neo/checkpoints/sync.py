"""Lightning checkpoint sync: save locally, push to ``{bucket}/runs/{run}/checkpoints/`` in the background; resume.

- ``CheckpointSync``: a Lightning CheckpointIO plugin wrapping the normal one (``Trainer(plugins=[...])``).
  A save is written locally by the base IO, hard-linked into ``<dir>/.neo-sync/`` (O(1), so later
  overwrites do not change what is uploaded) and queued for upload; the step never waits on the
  bucket. A checkpoint ModelCheckpoint rotates out is deleted locally and remotely, except the one
  this run resumed from. ``teardown`` drains the queue with a bounded wait and warns about leftovers.
``ckpt_path`` (path | URL | bare filename | ``auto`` | ``last`` | ``best``) is resolved by
``neo.checkpoints.resume.resolve_ckpt_path``; the bucket folder is listed by ``neo.checkpoints.listing``.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io.wrapper import _WrappingCheckpointIO

from neo.checkpoints.listing import bucket_checkpoints
from neo.storage.errors import HashRecordError, classify
from neo.storage.resolver import is_url
from neo.storage.settings import StorageSettings, check_key
from neo.storage.transfer import cached_sha256, remote_sha256
from neo.storage.uploader import BackgroundUploader, ReplaceRefused

log = logging.getLogger(__name__)
STAGING = ".neo-sync"


class CheckpointSync(_WrappingCheckpointIO):
    """CheckpointIO plugin that mirrors a run's checkpoints to the bucket without blocking training.

    storage: StorageSettings (no bucket -> plain local checkpointing).
    run_name: remote folder ``runs/{run_name}/checkpoints/``.
    checkpoint_io: base IO (None: Lightning's default TorchCheckpointIO is filled in by the strategy).
    drain_timeout_s: bounded wait at teardown (default ``storage.drain_timeout_s``).
    retries: upload retries per checkpoint (with doubling backoff from ``storage.backoff_s``).
    """

    def __init__(self, storage: StorageSettings, run_name: str, checkpoint_io: Any = None,
                 drain_timeout_s: float | None = None, retries: int | None = None, lease: Any = None):
        super().__init__(checkpoint_io)
        self.storage = storage
        self.run_name = check_key(run_name)
        self.drain_timeout_s = storage.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        self.retries = storage.retries if retries is None else retries
        self.uploader = self._new_uploader()
        self.protected: set[str] = set()  # file names never deleted (the checkpoint resumed from)
        self.unsynced: list[str] = []
        self.refused: list[str] = []  # objects not replaced/deleted: the bucket held what this run did not write
        self.lease = lease  # neo.storage.lease.RunLease owned by this run (None: no lease check)
        # What this run may replace: object name -> sha256 values it wrote or took over knowingly at start
        # (``take_baseline``). An object found with any other content is never replaced or deleted.
        self.allowed: dict[str, set[str]] = {}
        self.offline = storage.offline_remote
        self._baseline_taken = False
        self._fs_root = None
        self._cleaned: set[Path] = set()

    def _new_uploader(self) -> BackgroundUploader:
        return BackgroundUploader(retries=self.retries, backoff_s=max(self.storage.backoff_s, 0.1),
                                  name="neo-ckpt-sync", timeout_s=self.storage.upload_timeout_s)

    # -- remote locations --------------------------------------------------------------------------
    @property
    def remote_dir_key(self) -> str:
        return self.storage.run_checkpoint_dir(self.run_name)

    def _remote(self, name: str) -> tuple[Any, str, str] | None:
        """(fs, rpath, url) of checkpoint ``name`` in the bucket, or None without a bucket."""
        if not self.storage.bucket:
            return None
        if self._fs_root is None:
            self._fs_root = self.storage.bucket_fs()
        fs, root = self._fs_root
        key = f"{self.remote_dir_key}/{check_key(name)}"
        return fs, f"{root}/{key}", self.storage.url(key)

    # -- what this run may replace ----------------------------------------------------------------------
    def take_baseline(self, resumed_from: Path | None = None) -> bool:
        """Record the run's bucket objects as they are now: this run continues them (``ckpt_path``) or replaces
        them on purpose (``overwrite=true``), so it may replace exactly these contents. The object of the name it
        resumed from counts only when it is not newer than the file resumed from (another machine's newer save of
        it is never replaced). False when the bucket could not be listed (nothing is allowed but what this run
        writes)."""
        if self._baseline_taken:
            return True
        self._baseline_taken = True
        if resumed_from is not None and resumed_from.is_file():
            # this run's own files: the one it resumed from and the checkpoints beside it (pushed by it earlier)
            for path in [resumed_from, *(p for p in resumed_from.parent.glob("*.ckpt") if p != resumed_from)]:
                if path.is_file() and not is_transient(path.name):
                    self.allowed.setdefault(path.name, set()).add(cached_sha256(path))
        if not self.storage.bucket or self.offline:
            return False
        try:
            remote = bucket_checkpoints(self.storage, self.run_name)
            fs, _ = self.storage.bucket_fs()
        except Exception as exc:  # noqa: BLE001 - unknown: every existing object stays protected
            log.warning("Could not list %s (%s): this run will replace no object it did not write.",
                        self.storage.url(self.remote_dir_key), classify(exc))
            return False
        for found in remote:
            if resumed_from is not None and found.name == resumed_from.name and resumed_from.is_file() \
                    and found.modified > resumed_from.stat().st_mtime + 1:
                continue  # saved elsewhere after the file this run resumed from: not this run's to replace
            try:
                recorded = remote_sha256(fs, found.fs_path)
            except HashRecordError:
                recorded = None
            if recorded:
                self.allowed.setdefault(found.name, set()).add(recorded)
        return True

    def _guard(self, name: str, digest: str | None):
        """The check run right before an upload (``digest``) or a delete (None) of ``name``."""

        def check(job) -> None:
            if self.lease is not None and not self.lease.still_owned():
                raise ReplaceRefused(f"Not pushing {job.label}: this run no longer owns {self.lease.url} (another run "
                                     "with this run_name took it over); the checkpoint stays local.")
            job.fs.invalidate_cache(os.path.dirname(job.rpath))
            if not job.fs.exists(job.rpath):
                return
            try:
                there = remote_sha256(job.fs, job.rpath)
            except HashRecordError:
                there = None
            if there is not None and (there == digest or there in self.allowed.get(name, set())):
                return
            what = f"sha256 {there}" if there else "no trustworthy sha256 record"
            if digest is None:
                raise ReplaceRefused(f"Not deleting {job.label}: the bucket holds a {name} ({what}) that this run did "
                                     "not write or resume from (another run or machine wrote it); it stays there.")
            raise ReplaceRefused(
                f"Not pushing {job.label}: the bucket holds a {name} ({what}) that this run did not write or resume "
                f"from, so neo will not replace it (another run or machine wrote it). This run's {name} stays local; "
                f"compare the two and push the one to keep with neo-weights push --force.")

        return check

    def _wrote(self, name: str, digest: str | None):
        def done(job) -> None:
            if digest is None:
                self.allowed.pop(name, None)
            else:
                self.allowed[name] = {digest}

        return done

    # -- CheckpointIO ----------------------------------------------------------------------------------
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        self.checkpoint_io.save_checkpoint(checkpoint, path, storage_options=storage_options)
        local = Path(os.fspath(path))
        if is_url(str(path)) or not local.is_file() or is_transient(local.name):
            return
        try:
            remote = self._remote(local.name)
            if remote is None:
                return
            fs, rpath, url = remote
            if self.offline:
                if url not in self.unsynced:
                    self.unsynced.append(url)
                log.info("Offline mode: %s not pushed.", url)
                return
            staged = self._stage(local)
            digest = cached_sha256(staged)
            self.uploader.submit_upload(fs, staged, rpath, label=url, cleanup=staged != local,
                                        precheck=self._guard(local.name, digest),
                                        on_done=self._wrote(local.name, digest))
        except Exception as exc:  # noqa: BLE001 - never fail the step for the bucket
            log.error("Checkpoint %s saved locally but not queued for upload (%s: %s)", local, classify(exc), exc)

    def remove_checkpoint(self, path: Any) -> None:
        name = Path(os.fspath(path)).name
        if name in self.protected:
            log.info("Keeping %s: this run resumed from it.", name)
            return
        self.checkpoint_io.remove_checkpoint(path)
        if is_transient(name) or self.offline:
            return
        try:
            remote = self._remote(name)
            if remote is not None:
                fs, rpath, url = remote
                self.uploader.submit_delete(fs, rpath, label=url, precheck=self._guard(name, None),
                                            on_done=self._wrote(name, None))
        except Exception as exc:  # noqa: BLE001
            log.error("Could not queue remote delete of %s (%s: %s)", name, classify(exc), exc)

    def load_checkpoint(self, path: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        name = Path(os.fspath(path)).name
        if not is_transient(name):
            self.protected.add(name)
            if not self._baseline_taken and not is_url(str(path)):  # resuming: this run continues these objects
                self.take_baseline(Path(os.fspath(path)))
        return self.checkpoint_io.load_checkpoint(path, *args, **kwargs)

    # -- pickling (ddp_spawn sends the Trainer's plugins to its worker processes) -----------------------
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the upload thread and the bucket connection; each process makes its own."""
        state = dict(self.__dict__)
        state["uploader"] = None
        state["_fs_root"] = None
        state["lease"] = None  # the launching process holds the lease and its heartbeat
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.uploader = self._new_uploader()

    def teardown(self) -> None:
        """Drain the upload queue (bounded); warn about and remember anything not synced."""
        offline = [u for u in self.unsynced if u not in self.uploader.pending()]
        self.unsynced = list(dict.fromkeys(offline + self.uploader.drain(self.drain_timeout_s)))
        self.refused = list(self.uploader.refused)
        if self.checkpoint_io is not None:
            self.checkpoint_io.teardown()

    def _stage(self, local: Path) -> Path:
        """Hard-link ``local`` into ``<dir>/.neo-sync/`` so the upload reads this exact save (copy if links fail).
        Links left by a crashed earlier process are removed on first use."""
        staging = local.parent / STAGING
        staging.mkdir(exist_ok=True)
        if staging not in self._cleaned:
            self._cleaned.add(staging)
            for stale in staging.iterdir():
                stale.unlink(missing_ok=True)
        staged = staging / f"{local.name}.{uuid.uuid4().hex[:12]}"
        try:
            os.link(local, staged)
        except OSError:
            shutil.copyfile(local, staged)
        return staged


def is_transient(name: str) -> bool:
    """Hidden files (Lightning's ``.temp*.ckpt`` hand-over between spawned processes) are neither uploaded
    nor protected from deletion."""
    return name.startswith(".")
