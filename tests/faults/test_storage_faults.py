"""Storage faults against a real S3 server on 127.0.0.1: the bucket down at start or killed mid-upload, refused
credentials, a missing bucket, an object whose bytes do not match its sha256, keys with '..'.

Neo must keep training when the bucket is only a mirror, refuse clearly when it is needed, name the
environment variables to check (never their values), and leave no partial file or object behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from neo.checkpoints.resume import WeightsUnavailableError, newest_checkpoint
from neo.checkpoints.sync import CheckpointSync
from neo.cli import weights
from neo.config.check import ConfigError, check_config
from neo.storage import ResolveError, StorageSettings, resolve
from neo.storage.errors import classify
from neo.storage.protocols import clear_instance_caches
from neo.storage.resolver import _short as short_reason
from neo.storage.transfer import download, upload
from neo.training.run import train
from tests.conftest import run_cli, train_overrides
from tests.faults.conftest import DyingProxy, assert_nothing_lost, flat, neo, output, partial_files
from tests.storage.conftest import BUCKET, KEY_ID, SECRET, run_env
from tests.training.helpers import compose_train

DEAD = "http://127.0.0.1:9"  # nothing listens there: connection refused


def r2(tmp_path: Path, drain_s: int = 15) -> list[str]:
    """Overrides: checkpoints and weights in r2://neo-test, quick retries (one botocore attempt each, an
    upload attempt bounded to 3 s)."""
    return ["storage=r2", f"storage.bucket=r2://{BUCKET}", f"storage.cache_dir={tmp_path}/cache", "storage.retries=1",
            "storage.backoff_s=0.1", f"storage.drain_timeout_s={drain_s}", "storage.upload_timeout_s=3",
            "+storage.storage_options.config_kwargs={retries:{max_attempts:1}}"]


def short_run(synth_root: Path, out: Path, *extra: str) -> list[str]:
    return train_overrides(synth_root, out, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                           "trainer.limit_val_batches=1", "logger=none", *extra)


def put(key: str, data: bytes, tmp_path: Path) -> None:
    """Upload ``data`` to ``r2://neo-test/{key}`` the way neo does (object + .sha256 sidecar)."""
    src = tmp_path / f"src-{os.path.basename(key)}"
    src.write_bytes(data)
    fs, root = StorageSettings(bucket=f"r2://{BUCKET}").bucket_fs()
    upload(src, fs, f"{root}/{key}")


def objects(endpoint) -> set[str]:
    return {o["Key"] for o in endpoint.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


# ------------------------------------------------------------------ the bucket is down at start
def test_bucket_down_at_start_trains_with_a_warning_when_it_is_only_a_mirror(synth_root, tmp_path, endpoint,
                                                                              monkeypatch, caplog):
    monkeypatch.setenv("R2_ENDPOINT_URL", DEAD)
    clear_instance_caches()
    cfg = compose_train(short_run(synth_root, tmp_path, "run_name=mirror", *r2(tmp_path), "storage.require=false"),
                        toy=True)  # a fresh run with the bucket down trains only when told (storage.require=false)
    with caplog.at_level(logging.WARNING):
        summary = train(cfg)
    assert summary.status == "finished" and summary.steps == 2
    unsynced = [r.getMessage() for r in caplog.records if "Not synced to the bucket" in r.getMessage()]
    assert len(unsynced) == 1, caplog.text
    for name in ("last.ckpt", "best.ckpt"):
        assert f"r2://{BUCKET}/runs/mirror/checkpoints/{name}" in unsynced[0]
    loaded = assert_nothing_lost(checkpoints=(summary.run_dir / "checkpoints",), cache=tmp_path / "cache",
                                 bucket=(endpoint.client, BUCKET))
    assert {Path(p).name for p in loaded} == {"last.ckpt", "best.ckpt"}
    assert objects(endpoint) == set()  # nothing reached the bucket, whole or partial


def test_bucket_down_and_a_needed_weight_only_there_is_a_clear_error(synth_root, tmp_path, endpoint):
    put("checkpoints/detector.ckpt", os.urandom(50_000), tmp_path)  # uploaded while the bucket was up
    env = run_env(endpoint.env, R2_ENDPOINT_URL=DEAD)
    result = run_cli("neo-train", *short_run(synth_root, tmp_path, "model=tiny", "pretrained=detector.ckpt",
                                             *r2(tmp_path), "storage.require=false"), cwd=tmp_path, env=env)
    text = output(result)
    assert result.returncode == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert "Could not resolve 'detector.ckpt'" in text
    assert re.search(rf"bucket r2://{BUCKET}/checkpoints/detector.ckpt: network", text), text[-3000:]
    assert "The network failed: check connectivity/endpoint and retry." in text
    assert partial_files(tmp_path / "cache") == [] and not (tmp_path / "cache/checkpoints/detector.ckpt").exists()


def test_auto_resume_with_the_bucket_down_and_no_local_checkpoint_refuses_to_start_fresh(synth_root, tmp_path,
                                                                                      endpoint, monkeypatch):
    """Starting fresh would later overwrite the bucket's checkpoints of the run: neo says so and stops."""
    put("runs/resumable/checkpoints/last.ckpt", os.urandom(10_000), tmp_path)
    monkeypatch.setenv("R2_ENDPOINT_URL", DEAD)
    clear_instance_caches()
    cfg = compose_train(short_run(synth_root, tmp_path, "run_name=resumable", "ckpt_path=auto", *r2(tmp_path)),
                        toy=True)
    with pytest.raises(WeightsUnavailableError) as info:
        train(cfg)
    message = str(info.value)
    assert "ckpt_path=auto: run 'resumable' has no local checkpoint" in message
    assert f"r2://{BUCKET}/runs/resumable/checkpoints: network" in message
    assert "ckpt_path=null" in message and isinstance(info.value, ConfigError)  # printed without a traceback
    assert not (tmp_path / "outputs/runs/resumable/checkpoints").exists()  # nothing trained, nothing to upload
    assert objects(endpoint) == {"runs/resumable/checkpoints/last.ckpt", "runs/resumable/checkpoints/last.ckpt.sha256"}


# ------------------------------------------------------------------ the server dies during an upload
def test_server_killed_during_a_checkpoint_upload(synth_root, tmp_path, endpoint):
    proxy = DyingProxy(endpoint.get_host_and_port(), die_after=4_000_000)  # a tiny checkpoint is ~20 MB
    env = run_env(endpoint.env, R2_ENDPOINT_URL=proxy.endpoint)
    result = neo("neo-train", *short_run(synth_root, tmp_path, "model=tiny", "run_name=killed", *r2(tmp_path)),
                 cwd=tmp_path, env=env)
    text = output(result)
    assert result.returncode == 0 and "neo-train: finished" in text, text[-3000:]
    checkpoints = tmp_path / "outputs/runs/killed/checkpoints"
    assert proxy.dead.is_set() and proxy.sent_when_killed < (checkpoints / "best.ckpt").stat().st_size
    url = f"r2://{BUCKET}/runs/killed/checkpoints"
    # the upload that was under way when the server died gives up after 3 s (upload_timeout_s) and is retried
    assert re.search(rf"Upload of {url}/\w+\.ckpt failed \(network: FSTimeoutError\); retry 1/1", text), text[-3000:]
    assert re.search(rf"Giving up upload of {url}/\w+\.ckpt after 2 attempts \(network", text), text[-3000:]
    unsynced = re.search(r"Not synced to the bucket after \d+s: (.*)", text)
    assert unsynced and {f"{url}/last.ckpt", f"{url}/best.ckpt"} <= set(unsynced.group(1).split(", ")), text[-3000:]
    assert "not in the bucket" in text, text[-3000:]  # the closing summary table says it too
    loaded = assert_nothing_lost(checkpoints=(checkpoints,), cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))
    assert {Path(p).name for p in loaded} == {"last.ckpt", "best.ckpt"}
    assert not any((checkpoints / ".neo-sync").iterdir())  # staged upload links cleaned up
    proxy.kill()


def test_upload_cut_mid_transfer_is_retried_and_lands_whole(tmp_path, endpoint, monkeypatch, caplog):
    """The server restarts during a checkpoint upload (down for 5 s): the attempt fails, neo retries with
    backoff, and the retry after the restart lands the whole checkpoint."""
    proxy = DyingProxy(endpoint.get_host_and_port(), die_after=4_000_000, down_for_s=5)
    monkeypatch.setenv("R2_ENDPOINT_URL", proxy.endpoint)
    clear_instance_caches()
    settings = StorageSettings(bucket=f"r2://{BUCKET}", upload_timeout_s=3, retries=5, backoff_s=1,
                               storage_options={"config_kwargs": {"retries": {"max_attempts": 1}}})
    sync = CheckpointSync(settings, "restarted", checkpoint_io=TorchCheckpointIO())
    local = tmp_path / "checkpoints/last.ckpt"
    with caplog.at_level(logging.WARNING):
        sync.save_checkpoint({"state_dict": {"w": torch.randn(3_000_000)}, "global_step": 7}, local)  # ~12 MB
        sync.teardown()  # drains the upload queue (bounded by storage.drain_timeout_s)
    assert sync.unsynced == [] and proxy.cuts == 1
    assert f"Upload of r2://{BUCKET}/runs/restarted/checkpoints/last.ckpt failed (network" in caplog.text
    assert "retry 1/5" in caplog.text
    body = endpoint.client.get_object(Bucket=BUCKET, Key="runs/restarted/checkpoints/last.ckpt")["Body"].read()
    assert body == local.read_bytes()
    assert_nothing_lost(checkpoints=(local.parent,), bucket=(endpoint.client, BUCKET))
    proxy.kill()


# ------------------------------------------------------------------ refused credentials, missing bucket
@pytest.fixture
def iam_auth(endpoint):
    """Turn on moto's IAM authentication; yields (key id, secret) of a user allowed s3:*."""
    iam = boto3.client("iam", endpoint_url=endpoint.endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                       region_name="us-east-1")
    iam.create_user(UserName="neo")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="neo", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="neo")["AccessKey"]
    requests.post(f"{endpoint.endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        requests.post(f"{endpoint.endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)


@pytest.mark.parametrize("fault", ["wrong secret", "unknown key id"])
def test_refused_credentials_name_the_variables_never_their_values(tmp_path, endpoint, iam_auth, monkeypatch, fault):
    key_id, secret = iam_auth
    fs, _ = StorageSettings(bucket=f"r2://{BUCKET}").bucket_fs()  # auth on: the test's own credentials are refused
    with pytest.raises(PermissionError):
        fs.ls(BUCKET)
    monkeypatch.setenv("R2_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", secret)
    clear_instance_caches()
    put("checkpoints/detector.ckpt", b"weights" * 1000, tmp_path)
    settings = StorageSettings(bucket=f"r2://{BUCKET}", cache_dir=tmp_path / "good", retries=0)
    assert resolve("detector.ckpt", storage=settings).read_bytes() == b"weights" * 1000  # right ones work

    bad_id, bad_secret = (key_id, "WRONG-secret-0123456789") if fault == "wrong secret" else ("AKIAUNKNOWN0000000", secret)
    monkeypatch.setenv("R2_ACCESS_KEY_ID", bad_id)
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", bad_secret)
    clear_instance_caches()
    settings = StorageSettings(bucket=f"r2://{BUCKET}", cache_dir=tmp_path / "cache", retries=0)
    with pytest.raises(ResolveError) as info:
        resolve("detector.ckpt", storage=settings)
    message = str(info.value)
    assert f"bucket r2://{BUCKET}/checkpoints/detector.ckpt: access denied" in message
    assert "Check the credentials in the environment:" in message
    assert "R2_ACCESS_KEY_ID" in message and "R2_SECRET_ACCESS_KEY" in message
    for value in (bad_secret, secret, bad_id, key_id):
        assert value not in message
    allowed = boto3.client("s3", endpoint_url=endpoint.endpoint, aws_access_key_id=key_id,
                           aws_secret_access_key=secret, region_name="us-east-1")
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(allowed, BUCKET))
    assert not (tmp_path / "cache/checkpoints/detector.ckpt").exists()


def test_missing_bucket_is_named_for_downloads_and_uploads(synth_root, tmp_path, endpoint, caplog):
    settings = StorageSettings(bucket="r2://no-such-bucket", cache_dir=tmp_path / "cache", retries=0)
    with pytest.raises(ResolveError) as info:
        resolve("detector.ckpt", storage=settings)
    message = str(info.value)
    assert "bucket r2://no-such-bucket/checkpoints/detector.ckpt: not found" in message
    assert "The bucket does not exist: create it, or fix storage.bucket" in message
    # the same bucket as a checkpoint mirror: training finishes, the log says which bucket is missing
    overrides = [o if not o.startswith("storage.bucket=") else "storage.bucket=r2://no-such-bucket" for o in r2(tmp_path)]
    cfg = compose_train(short_run(synth_root, tmp_path, "run_name=nobucket", *overrides, "storage.require=false"),
                        toy=True)  # without it the run is refused at start, naming the missing bucket
    with caplog.at_level(logging.WARNING):
        summary = train(cfg)
    assert summary.status == "finished"
    gave_up = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Giving up upload")]
    assert gave_up and all("The bucket does not exist" in m and "storage.bucket" in m for m in gave_up), caplog.text
    assert_nothing_lost(checkpoints=(summary.run_dir / "checkpoints",), cache=tmp_path / "cache")


# ------------------------------------------------------------------ an object that does not match its sha256
@pytest.mark.parametrize("record", ["sidecar", "metadata"])
def test_object_whose_bytes_do_not_match_its_sha256_is_refused(tmp_path, endpoint, record):
    good, bad = os.urandom(200_000), os.urandom(200_000)
    digest = hashlib.sha256(good).hexdigest()
    if record == "sidecar":  # neo uploaded it, then someone replaced the object's bytes
        put("checkpoints/swapped.ckpt", good, tmp_path)
        endpoint.client.put_object(Bucket=BUCKET, Key="checkpoints/swapped.ckpt", Body=bad)
    else:  # only the object metadata records the sha256
        endpoint.client.put_object(Bucket=BUCKET, Key="checkpoints/swapped.ckpt", Body=bad, Metadata={"sha256": digest})
    settings = StorageSettings(bucket=f"r2://{BUCKET}", cache_dir=tmp_path / "cache", retries=1, backoff_s=0.01)
    for identifier in ("swapped.ckpt", f"r2://{BUCKET}/checkpoints/swapped.ckpt"):
        with pytest.raises(ResolveError) as info:
            resolve(identifier, storage=settings)
        assert re.search(rf"corrupt \(CorruptDownloadError: .*sha256 {hashlib.sha256(bad).hexdigest()} != recorded "
                         rf"{digest}\)", str(info.value)), str(info.value)
    assert endpoint.gets(f"/{BUCKET}/checkpoints/swapped.ckpt") == 4  # two tries per identifier, then refused
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert cached == []  # neither the bad bytes nor a partial file


# ------------------------------------------------------------------ keys with '..'
def test_keys_with_dotdot_are_refused_before_any_request(tmp_path, endpoint):
    settings = StorageSettings(bucket=f"r2://{BUCKET}", prefix="neo", cache_dir=tmp_path / "cache")
    endpoint.requests.clear()
    for url in (f"r2://{BUCKET}/neo/../../etc/passwd", f"b2://{BUCKET}/a/..", f"r2://{BUCKET}/../{BUCKET}/x.ckpt"):
        with pytest.raises(ValueError, match=r"Refusing object key .*'\.\.' is not allowed"):
            resolve(url, storage=settings)
    with pytest.raises(ResolveError, match="does not exist"):  # a relative path, never a bucket key
        resolve("../escape.ckpt", storage=settings)
    with pytest.raises(ValueError, match=r"'\.\.' is not allowed"):
        CheckpointSync(settings, "..")
    with pytest.raises(ValueError, match=r"'\.\.' is not allowed"):
        newest_checkpoint(tmp_path / "no-local-checkpoints", "../other-run", settings)
    with pytest.raises(ValueError, match=r"'\.\.' is not allowed"):
        StorageSettings(bucket=f"r2://{BUCKET}", prefix="team/../../other")
    with pytest.raises(ValueError, match=r"'\.\.' is not allowed"):
        settings.url("checkpoints/../../x")
    assert endpoint.requests == []  # refused before anything was asked of the server
    assert not (tmp_path / "cache").exists() or partial_files(tmp_path / "cache") == []
    assert not (tmp_path / "etc").exists()


def test_run_name_with_dotdot_is_a_config_error(tmp_path):
    cfg = compose_train([f"paths.root_dir={tmp_path}", "run_name=.."])
    with pytest.raises(ConfigError, match=r"run_name='\.\.' is not a folder name\. Fix:"):
        check_config(cfg)


# ------------------------------------------------------------------ 1. a mistyped bucket never becomes a local folder
def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def cli(tmp_path: Path, *args: str, bucket: str | None = f"r2://{BUCKET}") -> list[str]:
    """neo-weights arguments with the test bucket (None: from NEO_BUCKET) and a cache under ``tmp_path``."""
    return [*(["--bucket", bucket] if bucket else []), "--cache-dir", str(tmp_path / "cache"), *args]


def said(capsys) -> str:
    captured = capsys.readouterr()
    return flat(captured.out + captured.err)


@pytest.mark.parametrize(("overrides", "neo_bucket", "message"), [
    (["storage.bucket=r2://"], None, "storage.bucket='r2://' has no bucket name. Fix: storage.bucket=r2://<bucket-name>."),
    ([], "", "storage.bucket='' is empty but storage=r2 needs a bucket."),
    (["storage.bucket=r2:/bkt"], None, "storage.bucket='r2:/bkt' is not a URL: the scheme 'r2' needs '://'. Fix: "
                                      "storage.bucket=r2://bkt."),
    (["storage.bucket=./mybucket"], None, "storage.bucket='./mybucket' is a folder but storage=r2"),
    (["storage.bucket=Bad_Bucket"], None, "has the invalid bucket name 'Bad_Bucket'"),
])
def test_mistyped_bucket_is_refused_before_any_work(synth_root, tmp_path, endpoint, monkeypatch, overrides,
                                                    neo_bucket, message):
    """neo-train storage=r2 with a bucket typo: a config error naming the value and the fix; no folder appears."""
    monkeypatch.chdir(tmp_path)
    if neo_bucket is not None:
        monkeypatch.setenv("NEO_BUCKET", neo_bucket)
    base = [o for o in r2(tmp_path) if not o.startswith("storage.bucket=")]
    before = files_under(tmp_path)
    for _ in range(2):  # the same command twice: the same refusal, still nothing written
        cfg = compose_train(short_run(synth_root, tmp_path, "run_name=typo", *base, *overrides), toy=True)
        with pytest.raises(ConfigError) as info:
            train(cfg)
        assert message in str(info.value)
        assert files_under(tmp_path) == before
    assert objects(endpoint) == set()
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


def test_empty_neo_bucket_stops_neo_train_with_one_paragraph(synth_root, tmp_path, endpoint):
    env = run_env(endpoint.env, NEO_BUCKET="")
    base = [o for o in r2(tmp_path) if not o.startswith("storage.bucket=")]
    result = run_cli("neo-train", *short_run(synth_root, tmp_path, "run_name=empty", *base), cwd=tmp_path, env=env)
    text = output(result)
    assert result.returncode == 1 and "Traceback" not in text, text[-3000:]
    assert "storage.bucket='' is empty but storage=r2 needs a bucket" in flat(text)
    assert not (tmp_path / "outputs/runs/empty/checkpoints").exists() and not list(tmp_path.glob("r2*"))
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))
    assert objects(endpoint) == set()


@pytest.mark.parametrize("how", ["override", "NEO_BUCKET"])
def test_bare_bucket_name_with_storage_r2_is_that_providers_bucket(synth_root, tmp_path, endpoint, monkeypatch, how):
    monkeypatch.chdir(tmp_path)
    base = [o for o in r2(tmp_path) if not o.startswith("storage.bucket=")]
    if how == "override":
        base.append(f"storage.bucket={BUCKET}")
    else:
        monkeypatch.setenv("NEO_BUCKET", BUCKET)
    summary = train(compose_train(short_run(synth_root, tmp_path, "run_name=bare", *base), toy=True))
    assert summary.status == "finished" and summary.unsynced == []
    assert {"runs/bare/checkpoints/last.ckpt", "runs/bare/checkpoints/best.ckpt"} <= objects(endpoint)
    assert not (tmp_path / BUCKET).exists() and not list(tmp_path.glob("r2*"))
    assert_nothing_lost(checkpoints=(summary.run_dir / "checkpoints",), cache=tmp_path / "cache",
                        bucket=(endpoint.client, BUCKET))


def test_neo_weights_push_to_a_mistyped_bucket_is_refused_never_written_locally(tmp_path, endpoint, monkeypatch,
                                                                               capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.bin").write_bytes(os.urandom(10_000))
    for args, neo_bucket, message in [
        (cli(tmp_path, "push", "a.bin", "--as", "checkpoints/a.bin", bucket="r2://"), None,
         "--bucket='r2://' has no bucket name"),
        (cli(tmp_path, "push", "a.bin", bucket="r2:/neo-test"), None, "the scheme 'r2' needs '://'"),
        (cli(tmp_path, "push", "a.bin", bucket=None), "", "NEO_BUCKET='' is set but empty"),
        (cli(tmp_path, "push", "a.bin", bucket=None), BUCKET, f"NEO_BUCKET='{BUCKET}' is a bare name, but no "
                                                              "provider says which storage it is in"),
    ]:
        if neo_bucket is not None:
            monkeypatch.setenv("NEO_BUCKET", neo_bucket)
        assert weights.main(args) == 1
        text = said(capsys)
        assert message in text and "Fix:" in text and "Uploaded" not in text
    assert files_under(tmp_path) == ["a.bin"]
    assert objects(endpoint) == set()
    monkeypatch.setenv("NEO_BUCKET", BUCKET)  # the same bare name with its provider named: the bucket
    assert weights.main(cli(tmp_path, "--storage", "r2", "push", "a.bin", bucket=None)) == 0
    assert f"Uploaded a.bin -> r2://{BUCKET}/checkpoints/a.bin" in said(capsys)
    assert objects(endpoint) == {"checkpoints/a.bin", "checkpoints/a.bin.sha256"}
    assert files_under(tmp_path) == ["a.bin"]
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 2. damage never turns verification off
def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("sidecar", [b"", b"garbage\n"], ids=["empty sidecar", "garbage sidecar"])
def test_damaged_sidecar_falls_back_to_the_metadata_and_refuses_corrupt_bytes(tmp_path, endpoint, monkeypatch,
                                                                              capsys, sidecar):
    monkeypatch.chdir(tmp_path)
    good, bad = os.urandom(100_000), os.urandom(100_000)
    put("checkpoints/model.ckpt", good, tmp_path)  # neo's upload: .sha256 sidecar and sha256 metadata
    endpoint.client.put_object(Bucket=BUCKET, Key="checkpoints/model.ckpt", Body=bad, Metadata={"sha256": sha(good)})
    endpoint.client.put_object(Bucket=BUCKET, Key="checkpoints/model.ckpt.sha256", Body=sidecar)
    cached = tmp_path / "cache/checkpoints/model.ckpt"
    for _ in range(2):  # pull, then the same pull again
        assert weights.main(cli(tmp_path, "pull", "model.ckpt")) == 1
        text = said(capsys)
        assert f"sha256 {sha(bad)} != recorded {sha(good)}" in text and "corrupt" in text
        assert not cached.exists()
    assert weights.main(cli(tmp_path, "verify")) == 0
    assert "Nothing to verify" in said(capsys)
    (tmp_path / "good.ckpt").write_bytes(good)  # the repair: push the good copy over it
    assert weights.main(cli(tmp_path, "push", "good.ckpt", "--as", "checkpoints/model.ckpt")) == 0
    assert "Uploaded good.ckpt" in said(capsys)
    assert weights.main(cli(tmp_path, "pull", "model.ckpt")) == 0
    assert cached.read_bytes() == good
    assert weights.main(cli(tmp_path, "verify")) == 0
    assert "All hashes match. cache: 1 checked (1 ok)" in said(capsys)
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


@pytest.mark.parametrize("record", ["damaged sidecar, no metadata", "sidecar and metadata disagree"])
def test_no_trustworthy_sha256_means_the_object_is_refused_unread(tmp_path, endpoint, record):
    data = os.urandom(50_000)
    if record == "damaged sidecar, no metadata":
        endpoint.client.put_object(Bucket=BUCKET, Key="checkpoints/model.ckpt", Body=data)
        endpoint.client.put_object(Bucket=BUCKET, Key="checkpoints/model.ckpt.sha256", Body=b"")
        reason = "is damaged (0 bytes, no sha256 in it) and no other sha256 is recorded"
    else:
        endpoint.client.put_object(Bucket=BUCKET, Key="checkpoints/model.ckpt", Body=data,
                                   Metadata={"sha256": sha(b"other")})
        endpoint.client.put_object(Bucket=BUCKET, Key="checkpoints/model.ckpt.sha256", Body=sha(data).encode())
        reason = f"its sidecar records sha256 {sha(data)} but its metadata records {sha(b'other')}"
    settings = StorageSettings(bucket=f"r2://{BUCKET}", cache_dir=tmp_path / "cache", retries=2, backoff_s=0.01)
    with pytest.raises(ResolveError) as info:
        resolve("model.ckpt", storage=settings)
    message = " ".join(str(info.value).split())
    assert f"bucket r2://{BUCKET}/checkpoints/model.ckpt: unverifiable" in message and reason in message
    assert "neo-weights push --force" in message
    assert endpoint.gets(f"/{BUCKET}/checkpoints/model.ckpt") == 0  # refused before reading, and not retried
    assert not (tmp_path / "cache/checkpoints/model.ckpt").exists()
    assert_nothing_lost(cache=tmp_path / "cache")


def test_damaged_cache_sidecar_is_refetched_never_adopted(tmp_path, endpoint, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    good = os.urandom(80_000)
    put("checkpoints/model.ckpt", good, tmp_path)
    assert weights.main(cli(tmp_path, "pull", "model.ckpt")) == 0
    cached = tmp_path / "cache/checkpoints/model.ckpt"
    cached.write_bytes(os.urandom(80_000))  # the cached bytes go bad and the sidecar is emptied
    Path(f"{cached}.sha256").write_bytes(b"")
    assert weights.main(cli(tmp_path, "verify")) == 1
    text = said(capsys)
    assert "UNVERIFIABLE cache checkpoints/model.ckpt: the cache sidecar" in text and "is damaged (0 bytes" in text
    assert "1 problem(s). cache: 1 checked (1 unverifiable)" in text
    assert weights.main(cli(tmp_path, "pull", "model.ckpt")) == 0
    assert cached.read_bytes() == good and Path(f"{cached}.sha256").read_text().split()[0] == sha(good)
    assert weights.main(cli(tmp_path, "verify")) == 0
    assert "All hashes match." in said(capsys)
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 3. push: guarded, one paragraph, exit 1
def puts(endpoint) -> int:
    return sum(1 for m, _ in endpoint.requests if m in ("PUT", "POST"))


@pytest.mark.parametrize(("fault", "bucket", "key", "message"), [
    ("missing bucket", "r2://no-such-bucket", "checkpoints/a.bin",
     "Could not push to r2://no-such-bucket/checkpoints/a.bin (not found:"),
    ("invalid name", "r2://Bad_Bucket!", "checkpoints/a.bin", "--bucket='r2://Bad_Bucket!' has the invalid bucket name"),
    ("name with a space", "r2://has space", "checkpoints/a.bin", "--bucket='r2://has space' has the invalid bucket name"),
    ("key with //", f"r2://{BUCKET}", "checkpoints//a.bin", "Refusing object key 'checkpoints//a.bin': it has an empty "
                                                           "part ('//')"),
])
def test_push_failures_are_one_paragraph_and_exit_1(tmp_path, endpoint, monkeypatch, capsys, fault, bucket, key,
                                                    message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.bin").write_bytes(os.urandom(20_000))
    for _ in range(2):  # the same command twice
        assert weights.main(cli(tmp_path, "push", "a.bin", "--as", key, bucket=bucket)) == 1
        text = said(capsys)
        assert message in text and "Traceback" not in text and "retry" not in text, text
    if fault == "missing bucket":
        assert "The bucket does not exist: create it, or fix storage.bucket" in text
    assert files_under(tmp_path) == ["a.bin"] and objects(endpoint) == set()
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


def test_push_with_the_server_down_retries_then_says_what_to_check(tmp_path, endpoint):
    (tmp_path / "a.bin").write_bytes(os.urandom(20_000))
    result = run_cli("neo-weights", *cli(tmp_path, "push", "a.bin"), cwd=tmp_path,
                     env=run_env(endpoint.env, R2_ENDPOINT_URL=DEAD))
    text = output(result)
    assert result.returncode == 1 and "Traceback" not in text, text
    assert f"Could not push to r2://{BUCKET}/checkpoints/a.bin (network:" in flat(text)
    assert "check the connection and the endpoint in R2_ACCOUNT_ID (or R2_ENDPOINT_URL)" in flat(text)
    assert text.count("retry") == 3  # storage.retries transient retries, each warned once
    assert SECRET not in text and KEY_ID not in text
    assert objects(endpoint) == set()
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


def test_push_with_refused_credentials_names_the_variables_not_their_values(tmp_path, endpoint, iam_auth,
                                                                            monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.bin").write_bytes(os.urandom(20_000))
    key_id, secret = iam_auth
    monkeypatch.setenv("R2_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", "WRONG-secret-0123456789")
    clear_instance_caches()
    assert weights.main(cli(tmp_path, "push", "a.bin")) == 1
    text = said(capsys)
    assert f"Could not push to r2://{BUCKET}/checkpoints/a.bin (access denied:" in text and "retry" not in text
    assert "The bucket refused the credentials: check R2_ACCOUNT_ID (or R2_ENDPOINT_URL), R2_ACCESS_KEY_ID, " \
           "R2_SECRET_ACCESS_KEY in the environment." in text
    assert "WRONG-secret" not in text and secret not in text
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", secret)  # fixed: the same command works
    clear_instance_caches()
    assert weights.main(cli(tmp_path, "push", "a.bin")) == 0
    allowed = boto3.client("s3", endpoint_url=endpoint.endpoint, aws_access_key_id=key_id,
                           aws_secret_access_key=secret, region_name="us-east-1")
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(allowed, BUCKET))


# ------------------------------------------------------------------ 4. credentials inside a URL
def test_credentials_inside_a_url_are_refused_and_never_repeated(synth_root, tmp_path, endpoint, monkeypatch,
                                                                 capsys, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.bin").write_bytes(os.urandom(20_000))
    put("checkpoints/model.ckpt", os.urandom(20_000), tmp_path)
    with_secret = f"r2://{KEY_ID}:{SECRET}@{BUCKET}"
    texts = []
    with caplog.at_level(logging.DEBUG):
        assert weights.main(cli(tmp_path, "pull", f"{with_secret}/checkpoints/model.ckpt")) == 1
        texts.append(said(capsys))
        assert weights.main(cli(tmp_path, "push", "a.bin", bucket=with_secret)) == 1
        texts.append(said(capsys))
        with pytest.raises(ValueError) as info:
            resolve(f"{with_secret}/checkpoints/model.ckpt", storage=StorageSettings(cache_dir=tmp_path / "cache"))
        texts.append(str(info.value))
        cfg = compose_train(short_run(synth_root, tmp_path, "run_name=creds", *r2(tmp_path),
                                      f"storage.bucket={with_secret}"), toy=True)
        with pytest.raises(ConfigError) as info:
            train(cfg)
        texts.append(str(info.value))
    for text in texts:
        assert "holds credentials inside the URL (shown as ***)" in text and f"r2://***@{BUCKET}" in text, text
    for text in [*texts, caplog.text, *files_under(tmp_path)]:
        assert SECRET not in text and KEY_ID not in text
    assert objects(endpoint) == {"checkpoints/model.ckpt", "checkpoints/model.ckpt.sha256"}
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 5. push repairs what the bucket altered
def test_push_compares_hashes_and_repairs_an_object_altered_behind_its_record(tmp_path, endpoint, monkeypatch,
                                                                              capsys):
    monkeypatch.chdir(tmp_path)
    data = os.urandom(60_000)
    (tmp_path / "a.ckpt").write_bytes(data)
    assert weights.main(cli(tmp_path, "push", "a.ckpt")) == 0
    assert "Uploaded a.ckpt" in said(capsys)
    sent = puts(endpoint)
    assert weights.main(cli(tmp_path, "push", "a.ckpt")) == 0  # the same push again: nothing sent
    assert "Already in bucket" in said(capsys) and puts(endpoint) == sent
    # the object's bytes change (same size) behind its intact .sha256 sidecar
    endpoint.client.put_object(Bucket=BUCKET, Key="checkpoints/a.ckpt", Body=os.urandom(60_000))
    sent = puts(endpoint)
    assert weights.main(cli(tmp_path, "push", "a.ckpt")) == 0
    assert "Uploaded a.ckpt" in said(capsys) and puts(endpoint) > sent
    assert endpoint.client.get_object(Bucket=BUCKET, Key="checkpoints/a.ckpt")["Body"].read() == data
    sent = puts(endpoint)
    assert weights.main(cli(tmp_path, "push", "a.ckpt", "--force")) == 0  # --force sends it whatever the records say
    assert "Uploaded a.ckpt" in said(capsys) and puts(endpoint) > sent
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 6. the smaller defects
def test_part_file_of_a_sigkilled_download_is_removed_by_the_next_resolve(tmp_path, endpoint):
    data = os.urandom(300_000)
    put("checkpoints/model.ckpt", data, tmp_path)
    cache = tmp_path / "cache"
    script = (
        "import os, signal\n"
        "from fsspec.callbacks import Callback\n"
        "from neo.storage import StorageSettings, resolve\n"
        "class KillAfterFirstBytes(Callback):\n"
        "    def relative_update(self, inc=1):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"print(resolve('model.ckpt', storage=StorageSettings(bucket='r2://{BUCKET}', cache_dir={str(cache)!r}),\n"
        "        callback=KillAfterFirstBytes()))\n")
    settings = StorageSettings(bucket=f"r2://{BUCKET}", cache_dir=cache)
    killed = subprocess.run([sys.executable, "-c", script], env=run_env(endpoint.env), timeout=120,
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert len(partial_files(cache)) == 1 and not (cache / "checkpoints/model.ckpt").exists()
    assert resolve("model.ckpt", storage=settings).read_bytes() == data  # the next resolve of that key
    assert_nothing_lost(cache=cache, bucket=(endpoint.client, BUCKET))
    # a client killed while the entry was already cached: the cache hit cleans its leftover too
    leftover = cache / "checkpoints/.model.ckpt.4242.0123abcd.part"
    leftover.write_bytes(data[:1000])
    assert resolve("model.ckpt", storage=settings).read_bytes() == data
    assert not leftover.exists()
    assert_nothing_lost(cache=cache, bucket=(endpoint.client, BUCKET))


def test_request_validation_errors_are_not_retried_and_keep_their_reason(tmp_path, endpoint, caplog):
    fs, _ = StorageSettings(bucket=f"r2://{BUCKET}").bucket_fs()
    endpoint.requests.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(Exception) as info:
        download(fs, "Bad_Bucket!/x.ckpt", tmp_path / "cache/x.ckpt", retries=3, backoff_s=0.5)
    assert classify(info.value) == "invalid request"
    assert "Invalid bucket name" in short_reason(info.value)  # botocore's second line, kept
    assert "retry" not in caplog.text and endpoint.requests == []
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


def test_no_network_at_all_fails_fast_with_one_message(tmp_path, endpoint):
    env = run_env(endpoint.env, R2_ENDPOINT_URL="http://s3.neo-test.invalid", HF_ENDPOINT="https://hub.neo-test.invalid")
    for bucket in (f"r2://{BUCKET}", "data/bucket"):
        result = neo("neo-weights", *cli(tmp_path, "pull", "timm/convnext_tiny", bucket=bucket), cwd=tmp_path, env=env)
        text = flat(output(result))
        assert result.returncode == 1 and "Traceback" not in text, text
        assert "No network: a host name did not resolve." in text and text.count("No network") == 1, text
        assert "retry" not in text and "WARNING" not in text, text
        unresolved = "s3.neo-test.invalid" if bucket.startswith("r2") else "hub.neo-test.invalid"
        assert f"the host '{unresolved}'" in text and "does not resolve" in text
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


def test_unknown_registry_name_gets_did_you_mean(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert weights.main(cli(tmp_path, "pull", "rtdetr/rtdetr_r50vd_6x_cocoo", bucket="data/bucket")) == 1
    text = said(capsys)
    assert "registry: unknown registry name (did you mean 'rtdetr/rtdetr_r50vd_6x_coco'" in text
    assert weights.main(cli(tmp_path, "verify", bucket="data/bucket")) == 0  # nothing was cached
    assert "Nothing to verify: the cache" in said(capsys)
    assert_nothing_lost(cache=tmp_path / "cache")


def test_list_never_wraps_names_when_piped(tmp_path):
    result = neo("neo-weights", *cli(tmp_path, "list", bucket="data/bucket"), cwd=tmp_path,
                 env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, output(result)
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines[0] == ["name", "framework", "file", "size", "cached", "in_bucket"]
    assert ["rtdetr/rtdetr_r50vd_6x_coco"] == [cells[0] for cells in lines if cells[0] == "rtdetr/rtdetr_r50vd_6x_coco"]
    assert all(len(cells) == 6 for cells in lines)
    result = neo("neo-weights", *cli(tmp_path, "list", "--format", "json", bucket="data/bucket"), cwd=tmp_path)
    rows = json.loads(result.stdout)
    assert {"name": "rtdetr/rtdetr_r50vd_6x_coco", "cached": False, "in_bucket": "no"}.items() <= next(
        r for r in rows if r["name"] == "rtdetr/rtdetr_r50vd_6x_coco").items()
    assert_nothing_lost(cache=tmp_path / "cache")
