"""Fault suite helpers: the real S3 server fixtures, a proxy that dies mid-request, runners and "nothing lost" checks.

Every fault test ends with :func:`assert_nothing_lost`: the checkpoints left behind load with
``weights_only=True``, the cache holds no partial download, the bucket holds no partial object.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import torch

from tests.storage.conftest import endpoint, s3_server  # noqa: F401 - fixtures: a real S3 server on 127.0.0.1
from tests.support.commands import flat, output, run_command  # noqa: F401 - output, flat: imported from here

PARTIAL_SUFFIXES = (".part", ".tmp")


def neo(command: str, *args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a console script (``neo-train`` ...) as a user would: a new process; stdout and stderr captured as text."""
    return run_command(command, *args, cwd=cwd, env=env, timeout=timeout)


def loadable_checkpoints(*folders: Path) -> dict[str, dict]:
    """Every ``*.ckpt`` under ``folders`` loaded with ``weights_only=True`` (fails the test if one does not load)."""
    loaded = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.ckpt")):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            assert isinstance(ckpt.get("state_dict"), dict) and ckpt["state_dict"], path
            loaded[str(path)] = ckpt
    return loaded


def partial_files(folder: Path) -> list[Path]:
    """Temporary download/upload files left under ``folder`` (there must be none after any fault)."""
    return [p for p in Path(folder).rglob("*") if p.is_file() and p.name.endswith(PARTIAL_SUFFIXES)]


def bucket_problems(client, bucket: str) -> list[str]:
    """Objects of an S3 bucket that are partial: a pending multipart upload, or bytes that do not match the
    ``.sha256`` sidecar neo writes next to every object it uploads."""
    problems = [f"pending multipart upload {u['Key']}"
                for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    for key in sorted(k for k in keys if not k.endswith((".sha256", "/lease.json"))):  # a run's lease: no data
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        if f"{key}.sha256" not in keys:
            problems.append(f"{key} has no .sha256 sidecar")
            continue
        recorded = client.get_object(Bucket=bucket, Key=f"{key}.sha256")["Body"].read().decode().split()[0]
        if hashlib.sha256(body).hexdigest() != recorded:
            problems.append(f"{key} does not match its sidecar")
    return problems


def assert_nothing_lost(*, checkpoints: tuple[Path, ...] = (), cache: Path | None = None,
                        bucket: tuple[object, str] | None = None) -> dict[str, dict]:
    """Checkpoints load, the cache holds no partial file, the bucket no partial object; returns the checkpoints."""
    loaded = loadable_checkpoints(*checkpoints)
    if cache is not None and Path(cache).exists():
        assert partial_files(cache) == []
    if bucket is not None:
        assert bucket_problems(*bucket) == []
    return loaded


class DyingProxy:
    """TCP proxy to the S3 server that dies once one request has sent ``die_after`` bytes upstream: every open
    connection is reset and the port refuses new ones (the endpoint is gone mid-upload). With ``down_for_s``
    it comes back after that long (a restarted server); until then new connections are reset."""

    def __init__(self, upstream: tuple[str, int], die_after: int, down_for_s: float | None = None):
        self.upstream, self.die_after, self.down_for_s = upstream, die_after, down_for_s
        self.dead = threading.Event()
        self.back_at = 0.0
        self.cuts = 0
        self.sent_when_killed = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.dead.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if time.monotonic() < self.back_at:  # restarting: accept and drop
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, is_request: bool) -> None:
        sent = 0
        try:
            while not self.dead.is_set():
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                sent += len(data)
                if is_request and sent > self.die_after and not self.cuts:
                    self.sent_when_killed = sent
                    self.kill()
        except OSError:
            pass

    def kill(self) -> None:
        self.cuts += 1
        if self.down_for_s is None:
            self.dead.set()
            self.sock.close()
        else:
            self.back_at = time.monotonic() + self.down_for_s
        with self._lock:
            cut, self._sockets = self._sockets, []
            for s in cut:  # as the kernel does for a killed server: both ends see the connection drop
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv() of the other pipe thread
                except OSError:
                    pass
                s.close()
