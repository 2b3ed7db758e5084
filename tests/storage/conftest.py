"""Fixtures: a real S3 HTTP server (moto) on 127.0.0.1, r2:// and b2:// pointed at it, a cutting TCP proxy."""

from __future__ import annotations

import os
import socket
import threading

import boto3
import pytest
import requests
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from neo.storage import StorageSettings, register_protocols
from neo.storage.protocols import clear_instance_caches
from neo.storage.uploader import shared_uploader

KEY_ID, SECRET = "AKIANEOTESTKEY0000001", "neo-test-secret-do-not-leak-0123456789"
BUCKET = "neo-test"


class CountingMotoServer(ThreadedMotoServer):
    """moto's threaded S3 server, recording (method, path) of each request so tests can count downloads."""

    def __init__(self):
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.requests: list[tuple[str, str]] = []

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)

        def counting(environ, start_response):
            self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
            return app(environ, start_response)

        self._server = make_server(self._ip_address, self._port, counting, True)
        self._server_ready_event.set()
        self._server.serve_forever()

    def gets(self, path: str) -> int:
        return sum(1 for m, p in self.requests if m == "GET" and p == path)


@pytest.fixture(scope="module")
def s3_server():
    server = CountingMotoServer()
    server.start()
    host, port = server.get_host_and_port()
    server.endpoint = f"http://{host}:{port}"
    yield server
    server.stop()


@pytest.fixture
def endpoint(s3_server, monkeypatch, tmp_path):
    """Reset the server, point r2:// and b2:// at it with test credentials, create the bucket."""
    requests.post(f"{s3_server.endpoint}/moto-api/reset", timeout=10)
    s3_server.requests.clear()
    clear_instance_caches()
    register_protocols()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_S3_ENDPOINT_URL", "R2_ACCOUNT_ID", "B2_REGION",
                 "NEO_OFFLINE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    env = {"R2_ENDPOINT_URL": s3_server.endpoint, "R2_ACCESS_KEY_ID": KEY_ID, "R2_SECRET_ACCESS_KEY": SECRET,
           "B2_ENDPOINT_URL": s3_server.endpoint, "B2_APPLICATION_KEY_ID": KEY_ID, "B2_APPLICATION_KEY": SECRET}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id=KEY_ID,
                          aws_secret_access_key=SECRET, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    s3_server.requests.clear()
    s3_server.env = env
    s3_server.client = client
    yield s3_server
    shared_uploader().drain(5)
    shared_uploader().clear()
    clear_instance_caches()


@pytest.fixture(params=["r2", "b2"])
def settings(request, endpoint, tmp_path) -> StorageSettings:
    """StorageSettings on ``{r2|b2}://neo-test/neo`` with a fresh cache dir."""
    return StorageSettings(bucket=f"{request.param}://{BUCKET}", prefix="neo", cache_dir=tmp_path / "cache",
                           retries=1, backoff_s=0.05, drain_timeout_s=20)


class CuttingProxy:
    """TCP proxy to the S3 server that can cut connections after ``cut_after`` response bytes, then refuse."""

    def __init__(self, upstream: tuple[str, int], cut_after: int | None = None, refuse_after_cut: bool = True):
        self.upstream = upstream
        self.cut_after = cut_after
        self.refuse_after_cut = refuse_after_cut
        self.cuts = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self._refuses():
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _refuses(self) -> bool:
        """Reset a new connection at once (here: after a cut, when ``refuse_after_cut``)."""
        return bool(self.cuts and self.refuse_after_cut)

    def _pipe(self, src, dst, is_response: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if is_response and self.cut_after is not None and sent + len(data) > self.cut_after and not (
                        self.cuts and not self.refuse_after_cut):
                    dst.sendall(data[: max(self.cut_after - sent, 0)])
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def run_env(endpoint_env: dict[str, str], **extra: str) -> dict[str, str]:
    """Environment for a subprocess: the test endpoint/credentials plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "R2_", "B2_"))}
    env.update(endpoint_env)
    env.update(extra)
    return env
