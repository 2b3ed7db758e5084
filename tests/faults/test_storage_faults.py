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
from pathlib import Path

import boto3
import pytest
import requests
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from neo.storage import CheckpointSync, ResolveError, StorageSettings, locate_auto_checkpoint, resolve
from neo.storage.protocols import clear_instance_caches
from neo.storage.transfer import upload
from neo.training.checkpoints import WeightsUnavailableError
from neo.training.config_check import ConfigError, check_config
from neo.training.run import train
from tests.conftest import train_overrides
from tests.faults.conftest import DyingProxy, assert_nothing_lost, neo, output, partial_files
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
    cfg = compose_train(short_run(synth_root, tmp_path, "run_name=mirror", *r2(tmp_path)), toy=True)
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
    result = neo("neo-train", *short_run(synth_root, tmp_path, "model=tiny", "pretrained=detector.ckpt", *r2(tmp_path)),
                 cwd=tmp_path, env=env)
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
    cfg = compose_train(short_run(synth_root, tmp_path, "run_name=nobucket", *overrides), toy=True)
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
        locate_auto_checkpoint("../other-run", settings)
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
