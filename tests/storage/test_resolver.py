"""resolve(): cache hit, bucket hit, origin fetch + background upload, corruption, offline, errors, interruption."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import fsspec
import pytest

from neo.storage import Registry, ResolveError, StorageSettings, resolve
from neo.storage.protocols import clear_instance_caches
from neo.storage.transfer import upload
from neo.storage.uploader import shared_uploader
from tests.storage.conftest import BUCKET, CuttingProxy, run_env


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(settings: StorageSettings, key: str, data: bytes, tmp_path: Path) -> str:
    """Upload ``data`` to ``key`` with neo's uploader (object + .sha256 sidecar); return its rpath."""
    src = tmp_path / f"src-{os.path.basename(key)}"
    src.write_bytes(data)
    fs, root = settings.bucket_fs()
    upload(src, fs, f"{root}/{key}")
    return f"{root}/{key}"


def make_registry(tmp_path: Path, origin: Path, name: str = "timm/tiny_net", file: str = "tiny_net.pth",
                  sha256: str | None = None) -> Registry:
    reg = tmp_path / "registry.yaml"
    reg.write_text(textwrap.dedent(f"""\
        models:
          {name}:
            file: {file}
            origin: {{url: {origin.as_uri()}}}
            sha256: {repr(sha256) if sha256 else 'null'}
        """))
    return Registry.load(reg)


def cut_network(settings: StorageSettings, monkeypatch) -> None:
    """Point r2/b2 at a closed port: any network access now fails."""
    for var in ("R2_ENDPOINT_URL", "B2_ENDPOINT_URL"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    clear_instance_caches()


def test_local_path_and_missing_path(tmp_path, settings):
    f = tmp_path / "w.pth"
    f.write_bytes(b"x")
    assert resolve(str(f), storage=settings) == f.resolve()
    with pytest.raises(ResolveError, match="does not exist"):
        resolve(str(tmp_path / "missing.pth"), storage=settings)


def test_bucket_hit_then_cache_hit_without_network(tmp_path, settings, endpoint, monkeypatch):
    data = os.urandom(300_000)
    rpath = put(settings, "checkpoints/model-a.ckpt", data, tmp_path)
    got = resolve("model-a.ckpt", storage=settings)
    assert got == settings.cache_dir / "checkpoints" / "model-a.ckpt"
    assert got.read_bytes() == data
    assert Path(str(got) + ".sha256").read_text().split()[0] == sha(data)
    assert endpoint.gets("/" + rpath) == 1
    cut_network(settings, monkeypatch)
    assert resolve("model-a.ckpt", storage=settings).read_bytes() == data  # cache hit, no network
    # the URL form is cached separately, and is served from its own cache without network too
    monkeypatch.setenv("R2_ENDPOINT_URL", endpoint.endpoint)
    monkeypatch.setenv("B2_ENDPOINT_URL", endpoint.endpoint)
    clear_instance_caches()
    url = f"{settings.bucket}/neo/checkpoints/model-a.ckpt"
    assert resolve(url, storage=settings).read_bytes() == data
    cut_network(settings, monkeypatch)
    assert resolve(url, storage=settings).read_bytes() == data


def test_origin_fetch_uploads_in_background_then_cache_and_bucket_serve(tmp_path, settings, endpoint, monkeypatch):
    data = os.urandom(200_000)
    origin = tmp_path / "origin" / "tiny_net.pth"
    origin.parent.mkdir()
    origin.write_bytes(data)
    registry = make_registry(tmp_path, origin, sha256=sha(data))
    got = resolve("timm/tiny_net", storage=settings, registry=registry)
    assert got.read_bytes() == data
    assert shared_uploader().drain(20) == []
    fs, root = settings.bucket_fs()
    key = f"{root}/models/pretrained/timm/tiny_net.pth"
    assert fs.cat_file(key) == data
    assert fs.cat_file(key + ".sha256").decode().split()[0] == sha(data)
    # second resolve: cache, with no network and no origin
    origin.unlink()
    cut_network(settings, monkeypatch)
    assert resolve("timm/tiny_net", storage=settings, registry=registry).read_bytes() == data
    # a fresh machine (empty cache) gets it from the bucket, not the (deleted) origin
    monkeypatch.setenv("R2_ENDPOINT_URL", endpoint.endpoint)
    monkeypatch.setenv("B2_ENDPOINT_URL", endpoint.endpoint)
    clear_instance_caches()
    fresh = StorageSettings(bucket=settings.bucket, prefix="neo", cache_dir=tmp_path / "cache2")
    before = endpoint.gets("/" + key)
    assert resolve("timm/tiny_net", storage=fresh, registry=registry).read_bytes() == data
    assert endpoint.gets("/" + key) == before + 1


def test_background_upload_failure_never_fails_caller(tmp_path, endpoint, caplog):
    data = b"weights" * 1000
    origin = tmp_path / "o.pth"
    origin.write_bytes(data)
    registry = make_registry(tmp_path, origin)
    bad = StorageSettings(bucket="r2://no-such-bucket-here", cache_dir=tmp_path / "c", retries=0)
    uploader = shared_uploader()
    old = uploader.retries
    uploader.retries = 0
    try:
        assert resolve("timm/tiny_net", storage=bad, registry=registry).read_bytes() == data
        assert uploader.drain(20) == ["r2://no-such-bucket-here/models/pretrained/timm/tiny_net.pth"]
    finally:
        uploader.retries = old
        uploader.failed.clear()
    assert any("Giving up upload" in r.message for r in caplog.records)


def test_corrupt_cache_entries_are_refetched(tmp_path, settings, endpoint):
    data = os.urandom(100_000)
    rpath = put(settings, "checkpoints/c.ckpt", data, tmp_path)
    path = resolve("c.ckpt", storage=settings)
    path.write_bytes(data[:50_000])  # truncated
    assert resolve("c.ckpt", storage=settings).read_bytes() == data
    altered = bytearray(data)
    altered[1234] ^= 0xFF  # same size, one byte changed
    path.write_bytes(bytes(altered))
    assert resolve("c.ckpt", storage=settings).read_bytes() == data
    assert endpoint.gets("/" + rpath) == 3


def test_registry_hash_mismatch_at_origin_is_refused(tmp_path, settings):
    origin = tmp_path / "o.pth"
    origin.write_bytes(b"not the expected weights")
    registry = make_registry(tmp_path, origin, sha256="0" * 64)
    with pytest.raises(ResolveError, match="sha256"):
        resolve("timm/tiny_net", storage=settings, registry=registry)
    assert not (settings.cache_dir / "models/pretrained/timm/tiny_net.pth").exists()


def test_offline_uses_only_cache(tmp_path, settings, endpoint, monkeypatch):
    rpath = put(settings, "checkpoints/o.ckpt", b"abc" * 100, tmp_path)
    monkeypatch.setenv("NEO_OFFLINE", "1")
    with pytest.raises(ResolveError) as err:
        resolve("o.ckpt", storage=settings)
    assert "skipped (offline)" in str(err.value) and "NEO_OFFLINE" in str(err.value)
    assert endpoint.gets("/" + rpath) == 0
    monkeypatch.delenv("NEO_OFFLINE")
    resolve("o.ckpt", storage=settings)
    monkeypatch.setenv("NEO_OFFLINE", "1")
    assert resolve("o.ckpt", storage=settings).read_bytes() == b"abc" * 100


def test_failure_lists_places_and_credentials(tmp_path, settings, endpoint, monkeypatch):
    for var in ("R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "B2_APPLICATION_KEY_ID", "B2_APPLICATION_KEY"):
        monkeypatch.delenv(var)
    clear_instance_caches()
    with pytest.raises(ResolveError) as err:
        resolve("missing.ckpt", storage=settings)
    text = str(err.value)
    assert "cache" in text and f"{settings.bucket}/neo/checkpoints/missing.ckpt" in text
    assert "no credentials" in text.lower()
    hint = "R2_ACCESS_KEY_ID" if settings.protocol == "r2" else "B2_APPLICATION_KEY_ID"
    assert hint in text


def test_unsafe_keys_refused(tmp_path, settings):
    with pytest.raises(ValueError, match=r"\.\."):
        resolve(f"{settings.bucket}/neo/../../etc/passwd", storage=settings)
    with pytest.raises(ValueError, match="leading"):
        StorageSettings(bucket="r2://x", prefix="/abs")
    with pytest.raises(ValueError, match=r"\.\."):
        StorageSettings(bucket="r2://x", prefix="a/../b")


def test_interrupted_download_leaves_no_partial_file(tmp_path, endpoint, monkeypatch):
    data = os.urandom(3_000_000)
    direct = StorageSettings(bucket=f"r2://{BUCKET}", cache_dir=tmp_path / "c", retries=1, backoff_s=0.05,
                             storage_options={"config_kwargs": {"retries": {"max_attempts": 1}}})
    put(direct, "checkpoints/big.ckpt", data, tmp_path)
    host, port = endpoint.get_host_and_port()
    # 1) the server goes away mid-download and stays away: clear error, nothing at the target
    proxy = CuttingProxy((host, port), cut_after=1_000_000, refuse_after_cut=True)
    monkeypatch.setenv("R2_ENDPOINT_URL", proxy.endpoint)
    clear_instance_caches()
    with pytest.raises(ResolveError) as err:
        resolve("big.ckpt", storage=direct)
    assert "network" in str(err.value)
    target = direct.cache_dir / "checkpoints" / "big.ckpt"
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")] == []
    proxy.close()
    # 2) one connection is cut mid-download, then the server is back: success on retry, verified
    proxy = CuttingProxy((host, port), cut_after=1_000_000, refuse_after_cut=False)
    monkeypatch.setenv("R2_ENDPOINT_URL", proxy.endpoint)
    clear_instance_caches()
    assert resolve("big.ckpt", storage=direct).read_bytes() == data
    assert proxy.cuts == 1
    proxy.close()


def test_eight_processes_download_once(tmp_path, endpoint):
    data = os.urandom(2_000_000)
    settings = StorageSettings(bucket=f"b2://{BUCKET}", cache_dir=tmp_path / "shared-cache")
    rpath = put(settings, "checkpoints/shared.ckpt", data, tmp_path)
    script = textwrap.dedent(f"""
        import hashlib, sys
        from neo.storage import StorageSettings, resolve
        s = StorageSettings(bucket="b2://{BUCKET}", cache_dir={str(settings.cache_dir)!r})
        p = resolve("shared.ckpt", storage=s)
        print(p, hashlib.sha256(p.read_bytes()).hexdigest())
        """)
    env = run_env(endpoint.env, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(8)]
    outs = [p.communicate(timeout=90)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert {tuple(o) for o in outs} == {(str(settings.cache_dir / "checkpoints" / "shared.ckpt"), sha(data))}
    assert endpoint.gets("/" + rpath) == 1
    assert [p.name for p in (settings.cache_dir / "checkpoints").iterdir() if p.name.endswith(".part")] == []


def test_protocol_roundtrip_is_fsspec_url(endpoint):
    """r2:// and b2:// URLs work through plain fsspec (as Lightning and user scripts use them)."""
    with fsspec.open(f"r2://{BUCKET}/x/y.bin", "wb") as f:
        f.write(b"hello")
    with fsspec.open(f"b2://{BUCKET}/x/y.bin", "rb") as f:
        assert f.read() == b"hello"


def test_local_folder_bucket_works_the_same(tmp_path):
    """The default bucket is a plain folder: origin fetch -> background upload there -> a fresh cache pulls it."""
    data = os.urandom(120_000)
    origin = tmp_path / "o.pth"
    origin.write_bytes(data)
    registry = make_registry(tmp_path, origin)
    folder = tmp_path / "bucket"
    settings = StorageSettings(bucket=str(folder), cache_dir=tmp_path / "c1")
    assert resolve("timm/tiny_net", storage=settings, registry=registry).read_bytes() == data
    assert shared_uploader().drain(20) == []
    stored = folder / "models/pretrained/timm/tiny_net.pth"
    assert stored.read_bytes() == data and (folder / "models/pretrained/timm/tiny_net.pth.sha256").is_file()
    assert sorted(p.name for p in stored.parent.iterdir()) == ["tiny_net.pth", "tiny_net.pth.sha256"]
    origin.unlink()
    fresh = StorageSettings(bucket=folder.as_uri(), cache_dir=tmp_path / "c2")  # file:// form
    assert resolve("timm/tiny_net", storage=fresh, registry=registry).read_bytes() == data
