"""Issue 21: a bucket never loses, mixes or leaks a checkpoint. One test per way it used to (numbered as in the
issue), each replaying what a user types against the real S3 server on 127.0.0.1 (twice, offline, concurrently,
after a typo, with the server gone), and each ending with every bucket object and local checkpoint checked by
sha256: nothing lost, nothing mixed.

neo-train runs in this process through its console-script entry point (``neo_train``) except where two real
processes are the point (two machines training one run name at once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from neo.cli import weights
from neo.storage import ResolveError, StorageSettings, resolve
from neo.storage.lease import LeaseHeld, RunLease
from neo.storage.protocols import clear_instance_caches
from neo.storage.redact import redact
from neo.storage.resolver import url_cache_path
from tests.faults.conftest import assert_nothing_lost, flat, output
from tests.faults.test_runs_never_overwrite import neo_train, sha256_bucket, sha256_tree
from tests.faults.test_storage_faults import put
from tests.storage.conftest import BUCKET, CuttingProxy, run_env
from tests.support.commands import BIN
from tests.sweeps.helpers import write_tiny_experiment

RUN = "mine"
CKPTS = f"runs/{RUN}/checkpoints"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recipe(tmp_path: Path, synth_root: Path, *, storage: bool = True, steps: int = 2) -> list[str]:
    """A tiny recipe ``experiment=mine`` (``steps`` steps + 1 val batch per epoch), pushing to r2://neo-test when
    ``storage``; returns the overrides that select it (outputs under ``tmp_path``)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the S3 server runs in this process: not the run's log
    selected = write_tiny_experiment(tmp_path / "conf", synth_root, name=RUN)
    path = tmp_path / f"conf/experiment/{RUN}.yaml"
    text = path.read_text().replace("trainer:\n", f"trainer:\n  max_epochs: 1\n  limit_train_batches: {steps}\n"
                                                  "  limit_val_batches: 1\n")
    text = text.replace("callbacks:\n", "callbacks:\n  ema: null\n  image_grid: null\n")
    if storage:
        text += (f"defaults:\n  - override /storage: r2\n  - _self_\nstorage:\n  bucket: r2://{BUCKET}\n"
                 f"  cache_dir: {tmp_path}/cache\n  retries: 1\n  backoff_s: 0.1\n  drain_timeout_s: 20\n")
    path.write_text(text)
    return [*selected, f"paths.root_dir={tmp_path}"]


@pytest.fixture
def user(synth_root, tmp_path, endpoint, capsys, monkeypatch):
    """``user(*overrides) -> (exit code, output)``: neo-train with the recipe, as typed."""
    args = recipe(tmp_path, synth_root)
    return lambda *extra: neo_train(*args, *extra)


def local_run(tmp_path: Path) -> Path:
    return tmp_path / f"outputs/runs/{RUN}"


def ckpt_state(path: Path) -> tuple[int, int]:
    """(epoch, global_step) stored in a checkpoint file."""
    content = torch.load(path, map_location="cpu", weights_only=True)
    return int(content["epoch"]), int(content["global_step"])


def bucket_ckpt(endpoint, name: str) -> bytes:
    return endpoint.client.get_object(Bucket=BUCKET, Key=f"{CKPTS}/{name}")["Body"].read()


def bucket_matches_local(endpoint, folder: Path) -> None:
    """Every local checkpoint of the run is in the bucket byte-for-byte (sha256), last.ckpt included."""
    remote = {k.rsplit("/", 1)[1]: v for k, v in sha256_bucket(endpoint.client, f"{CKPTS}/").items()
              if k.endswith(".ckpt")}
    local = {p.name: sha(p.read_bytes()) for p in folder.glob("*.ckpt")}
    assert "last.ckpt" in local and local == {n: remote.get(n) for n in local}, (remote, local)


def no_lease_left(endpoint) -> None:
    assert f"runs/{RUN}/lease.json" not in sha256_bucket(endpoint.client, f"runs/{RUN}/")


# ------------------------------------------------------------------ 1. offline never starts fresh over the bucket
def test_1_offline_auto_resume_never_starts_fresh_and_never_pushes(user, tmp_path, endpoint, monkeypatch):
    code, text = user()
    assert code == 0, text[-3000:]
    first = sha256_bucket(endpoint.client, f"runs/{RUN}/")
    assert {f"{CKPTS}/best.ckpt", f"{CKPTS}/last.ckpt"} <= set(first)
    shutil.rmtree(local_run(tmp_path))  # another machine: the run exists only in the bucket
    monkeypatch.setenv("NEO_OFFLINE", "true")
    for _ in range(2):  # typed twice: the same refusal, nothing trained, nothing pushed
        code, text = user("ckpt_path=auto", "trainer.max_epochs=2")
        assert code == 1 and "Traceback" not in text, text[-3000:]
        message = flat(text)
        assert f"ckpt_path=auto: run '{RUN}' has no local checkpoint" in message, message
        assert f"r2://{BUCKET}/{CKPTS}: skipped (offline)" in message and "Offline mode is on" in message
        assert not list(local_run(tmp_path).glob("checkpoints/*.ckpt"))
        assert sha256_bucket(endpoint.client, f"runs/{RUN}/") == first
    # a fresh run offline cannot check the bucket either: refused before anything is written...
    shutil.rmtree(local_run(tmp_path), ignore_errors=True)
    code, text = user()
    assert code == 1 and "could not check whether" in flat(text) and "offline mode is on" in flat(text), text[-3000:]
    assert "storage.require=false" in flat(text) and not local_run(tmp_path).exists()
    # ...unless the user says so: it trains, pushes nothing, and its summary says the bucket was not checked
    code, text = user("storage.require=false")
    assert code == 0, text[-3000:]
    record = json.loads((local_run(tmp_path) / "summary.json").read_text())
    assert any("the bucket was not checked" in n for n in record["bucket_notes"]), record
    assert {f"r2://{BUCKET}/{CKPTS}/last.ckpt", f"r2://{BUCKET}/{CKPTS}/best.ckpt"} <= set(record["unsynced"])
    assert sha256_bucket(endpoint.client, f"runs/{RUN}/") == first  # nothing lost, nothing replaced
    assert_nothing_lost(checkpoints=(local_run(tmp_path),), cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 2. the bucket is down at start
class Gate(CuttingProxy):
    """TCP proxy to the S3 server that resets every connection until ``open`` is set (a server still booting)."""

    def __init__(self, upstream: tuple[str, int]):
        self.open = threading.Event()
        super().__init__(upstream)

    def _refuses(self) -> bool:
        return not self.open.is_set()


GATE: Gate | None = None


class ServerComesBack(Callback):
    """Opens the gate when training starts: the bucket was down at start and is back for the pushes."""

    def on_train_start(self, trainer, pl_module) -> None:
        if GATE is not None:
            GATE.open.set()


def test_2_bucket_down_at_start_never_replaces_a_bucket_only_run(user, tmp_path, endpoint, monkeypatch):
    global GATE
    code, text = user()
    assert code == 0, text[-3000:]
    first = sha256_bucket(endpoint.client, f"runs/{RUN}/")
    shutil.rmtree(local_run(tmp_path))  # the run now exists only in the bucket
    GATE = Gate(endpoint.get_host_and_port())
    monkeypatch.setenv("R2_ENDPOINT_URL", GATE.endpoint)
    clear_instance_caches()
    quick = "+storage.storage_options.config_kwargs={retries:{max_attempts:1}}"
    try:
        for _ in range(2):  # the same fresh run, typed twice while the server is down: refused, nothing written
            code, text = user(quick)
            assert code == 1 and "Traceback" not in text, text[-3000:]
            message = flat(text)
            assert f"could not check whether r2://{BUCKET}/{CKPTS} already holds checkpoints of run '{RUN}'" in message
            assert "storage.require=false" in message and not local_run(tmp_path).exists()
        # the user trains anyway; the server comes back during training: the bucket-only run is not replaced
        code, text = user(quick, "storage.require=false", f"+callbacks.back._target_={__name__}.ServerComesBack")
        assert code == 0, text[-3000:]
        assert GATE.open.is_set()
    finally:
        GATE.close()
        GATE = None
    message = flat(text)
    assert f"Not pushing r2://{BUCKET}/{CKPTS}/last.ckpt: the bucket holds a last.ckpt" in message, message[-3000:]
    record = json.loads((local_run(tmp_path) / "summary.json").read_text())
    notes = " ".join(record["bucket_notes"])
    assert "the bucket was not checked" in notes and "Not pushing" in notes and "best.ckpt" in notes, record
    assert sha256_bucket(endpoint.client, f"runs/{RUN}/") == first  # all four objects untouched
    assert_nothing_lost(checkpoints=(local_run(tmp_path),), cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 3. two runs with one run name at once
def test_3_two_machines_one_run_name_never_mix_checkpoints(synth_root, tmp_path, endpoint):
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    args = [recipe(m, synth_root, steps=6) for m in machines]
    env = run_env(endpoint.env, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", COLUMNS="200")
    first = subprocess.Popen([str(BIN / "neo-train"), *args[0], "trainer.max_epochs=2"], cwd=machines[0], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while f"runs/{RUN}/lease.json" not in sha256_bucket(endpoint.client, f"runs/{RUN}/"):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0][-3000:]
        time.sleep(0.2)
    second = subprocess.run([str(BIN / "neo-train"), *args[1]], cwd=machines[1], env=env, capture_output=True,
                            text=True, timeout=300)
    text = flat(output(second))
    assert second.returncode == 1 and "Traceback" not in text, text[-3000:]
    assert f"run '{RUN}' is owned by another run: r2://{BUCKET}/runs/{RUN}/lease.json names run" in text, text
    assert f"host {socket.gethostname()!r} (pid {first.pid}" in text and "last heartbeat" in text
    assert "storage.takeover=true" in text
    assert not list((machines[1] / f"outputs/runs/{RUN}").glob("checkpoints/*.ckpt"))  # refused before training
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out[-3000:]
    # the bucket holds exactly machine A's checkpoints (best and last from one run), and no lease is left
    bucket_matches_local(endpoint, machines[0] / f"outputs/runs/{RUN}/checkpoints")
    no_lease_left(endpoint)
    assert_nothing_lost(checkpoints=tuple(machines), bucket=(endpoint.client, BUCKET))


def test_3_lease_conditional_put_one_winner_and_explicit_stale_takeover(tmp_path, endpoint):
    settings = StorageSettings(bucket=f"r2://{BUCKET}", lease_stale_s=2)
    won, lost = [], []

    def take() -> None:
        lease = RunLease(settings, RUN)
        try:
            won.append(lease.acquire())
        except LeaseHeld as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 3 and won[0].conditional  # moto honours If-None-Match: *
    owner = won[0]
    owner._stop.set()  # the owner hangs: no heartbeat any more
    time.sleep(2.5)
    with pytest.raises(LeaseHeld, match="no heartbeat for more than storage.lease_stale_s=2 s: if that run is gone, "
                                        "take it over with storage.takeover=true"):
        RunLease(settings, RUN).acquire()
    taker = RunLease(StorageSettings(bucket=f"r2://{BUCKET}", lease_stale_s=2, takeover=True), RUN).acquire()
    assert taker.owned and taker.took_over and owner.owner.run_id[:8] in taker.took_over
    assert not owner.still_owned()  # the hung owner finds out and pushes nothing more
    taker.release()
    no_lease_left(endpoint)
    assert_nothing_lost(bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 4. an explicit bucket URL and a stale cache
def test_4_explicit_bucket_url_resumes_from_the_bucket_not_a_stale_cache(user, tmp_path, endpoint, capsys):
    url = f"r2://{BUCKET}/{CKPTS}/last.ckpt"
    code, text = user()  # epoch 1 in the bucket
    assert code == 0, text[-3000:]
    assert weights.main(["--bucket", f"r2://{BUCKET}", "--cache-dir", str(tmp_path / "cache"), "pull", url]) == 0
    cached = url_cache_path(url, StorageSettings(cache_dir=tmp_path / "cache"))
    assert ckpt_state(cached) == (0, 2)  # this machine caches epoch 1
    code, text = user("ckpt_path=auto", "trainer.max_epochs=2")  # another machine trains epoch 2 and pushes it
    assert code == 0, text[-3000:]
    epoch2 = bucket_ckpt(endpoint, "last.ckpt")
    shutil.rmtree(local_run(tmp_path))
    code, text = user(f"ckpt_path={url}", "trainer.max_epochs=3")  # this machine continues from the URL
    assert code == 0, text[-3000:]
    record = json.loads((local_run(tmp_path) / "summary.json").read_text())
    assert (record["start_step"], record["steps"]) == (4, 6), record  # from epoch 2, not the stale epoch 1
    assert sha(cached.read_bytes()) != sha(epoch2) or ckpt_state(cached)[1] == 4
    assert ckpt_state(local_run(tmp_path) / "checkpoints/last.ckpt")[1] == 6  # epoch 2's training kept
    bucket_matches_local(endpoint, local_run(tmp_path) / "checkpoints")
    # a stale copy resumed from anyway (a local file older than the bucket's object): its pushes are refused
    before = sha256_bucket(endpoint.client, f"runs/{RUN}/")
    stale = tmp_path / "old/last.ckpt"
    stale.parent.mkdir()
    shutil.copyfile(cached, stale)
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    shutil.rmtree(local_run(tmp_path))
    code, text = user(f"ckpt_path={stale}", "trainer.max_epochs=4")
    assert code == 0, text[-3000:]
    assert f"Not pushing r2://{BUCKET}/{CKPTS}/last.ckpt: the bucket holds a last.ckpt" in flat(text), text[-3000:]
    assert sha256_bucket(endpoint.client, f"runs/{RUN}/") == before
    assert_nothing_lost(checkpoints=(local_run(tmp_path), stale.parent), cache=tmp_path / "cache",
                        bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 5. '#', '?' and non-ASCII in keys
def test_5_keys_with_hash_question_mark_and_accents_never_share_a_cache_file(tmp_path, endpoint, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    names = ["ckpt é#1?.bin", "ckpt é#2.bin", "ckpt é#1%3F.bin", "ckpt é"]
    data = {n: os.urandom(5_000) for n in names}
    for name in names:
        put(f"checkpoints/{name}", data[name], tmp_path)
    settings = StorageSettings(bucket=f"r2://{BUCKET}", cache_dir=tmp_path / "cache")
    for _ in range(2):  # pulled twice, in both orders: each URL gives its own bytes
        for name in (*names, *reversed(names)):
            got = resolve(f"r2://{BUCKET}/checkpoints/{name}", storage=settings)
            assert sha(got.read_bytes()) == sha(data[name]), name
        for name in names:
            assert weights.main(["--bucket", f"r2://{BUCKET}", "--cache-dir", str(tmp_path / "cache"), "pull",
                                 f"r2://{BUCKET}/checkpoints/{name}"]) == 0
    paths = {url_cache_path(f"r2://{BUCKET}/checkpoints/{n}", settings) for n in names}
    assert len(paths) == len(names)
    assert {sha(p.read_bytes()) for p in paths} == {sha(d) for d in data.values()}
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 6. an object with no record
def test_6_an_object_with_no_sha256_record_is_refused(tmp_path, endpoint, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = os.urandom(30_000)
    endpoint.client.put_object(Bucket=BUCKET, Key="checkpoints/unrecorded.ckpt", Body=data)  # no sidecar, no metadata
    settings = StorageSettings(bucket=f"r2://{BUCKET}", cache_dir=tmp_path / "cache", retries=2, backoff_s=0.01)
    for identifier in ("unrecorded.ckpt", f"r2://{BUCKET}/checkpoints/unrecorded.ckpt"):
        for _ in range(2):
            with pytest.raises(ResolveError) as info:
                resolve(identifier, storage=settings)
            message = flat(str(info.value))
            assert "unverifiable" in message and "has no sha256 record (no .sha256 sidecar, no sha256 metadata)" \
                in message and "neo-weights push" in message, message
    assert weights.main(["--bucket", f"r2://{BUCKET}", "--cache-dir", str(tmp_path / "cache"), "pull",
                         "unrecorded.ckpt"]) == 1
    captured = capsys.readouterr()
    assert "has no sha256 record" in flat(captured.out + captured.err)
    assert endpoint.gets(f"/{BUCKET}/checkpoints/unrecorded.ckpt") == 0  # refused before reading, not retried
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    # neo-weights push records it; then it resolves, verified
    (tmp_path / "unrecorded.ckpt").write_bytes(data)
    assert weights.main(["--bucket", f"r2://{BUCKET}", "--cache-dir", str(tmp_path / "cache"), "push",
                         "unrecorded.ckpt", "--as", "checkpoints/unrecorded.ckpt"]) == 0
    assert sha(resolve("unrecorded.ckpt", storage=settings).read_bytes()) == sha(data)
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 7. credentials never reach a file or output
KEY, SECRET_WITH_SLASH = "AKIANEOLEAKTEST00007", "leak/Secret+with/slash0123456789"


@pytest.mark.parametrize("override", [
    f"storage.bucket=r2://{KEY}:{SECRET_WITH_SLASH}@{BUCKET}",
    f"storage.bucket=r2:/{KEY}:{SECRET_WITH_SLASH}@{BUCKET}",
    f"storage.bucket={KEY}:{SECRET_WITH_SLASH}@{BUCKET}",
    f"ckpt_path=r2://{KEY}:{SECRET_WITH_SLASH}@{BUCKET}/{CKPTS}/last.ckpt",
])
def test_7_credentials_in_a_url_reach_no_file_and_no_output(user, tmp_path, endpoint, caplog, override):
    code, text = user()
    assert code == 0, text[-3000:]
    local, remote = sha256_tree(local_run(tmp_path)), sha256_bucket(endpoint.client, "")
    with caplog.at_level(logging.DEBUG):
        for extra in ([], ["run_name=other"]):  # the existing run and an empty folder, each typed twice
            for _ in range(2):
                code, text = user(override, *extra)
                assert code == 1 and "Traceback" not in text, text[-3000:]
                assert "holds credentials (shown as ***)" in flat(text) and "***@" in text, text[-3000:]
                assert KEY not in text and "Secret" not in text and "slash0123" not in text
    assert KEY not in caplog.text and "slash0123" not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file() and "cache" not in path.parts:
            blob = path.read_bytes()
            assert KEY.encode() not in blob and b"slash0123" not in blob, path
    assert sha256_tree(local_run(tmp_path)) == local and not (tmp_path / "outputs/runs/other").exists()
    assert sha256_bucket(endpoint.client, "") == remote
    for value in (override, f"summary {override} end", json.dumps({"overrides": [override]})):
        assert "slash0123" not in redact(value) and KEY not in redact(value)
    assert_nothing_lost(checkpoints=(local_run(tmp_path),), cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 8. a refused bucket setting writes nothing
@pytest.mark.parametrize("typo", ["storage.bucket=r2:/neo-test", "storage.bucket=r2://", "storage.bucket=Bad_Bucket",
                                  "storage.bucket=./folder-with-r2"])
def test_8_a_refused_bucket_setting_leaves_no_file_behind(user, tmp_path, endpoint, typo):
    code, text = user()
    assert code == 0, text[-3000:]
    local, remote = sha256_tree(local_run(tmp_path)), sha256_bucket(endpoint.client, "")
    before = sorted(p for p in tmp_path.rglob("*") if "cache" not in p.parts)
    for extra in ([], ["run_name=empty"], ["ckpt_path=auto"]):
        for _ in range(2):
            code, text = user(typo, *extra)
            assert code == 1 and "Traceback" not in text and "- storage: storage.bucket=" in flat(text), text[-3000:]
            assert "Fix:" in text
    assert sha256_tree(local_run(tmp_path)) == local  # .hydra/ and train.log of the existing run untouched
    assert sorted(p for p in tmp_path.rglob("*") if "cache" not in p.parts) == before  # no folder, .hydra/ or log
    assert sha256_bucket(endpoint.client, "") == remote
    assert_nothing_lost(checkpoints=(local_run(tmp_path),), cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 9. a finished run that exists only in the bucket
def test_9_auto_on_a_finished_bucket_only_run_reports_truthfully(user, tmp_path, endpoint):
    code, text = user()
    assert code == 0, text[-3000:]
    first = sha256_bucket(endpoint.client, f"runs/{RUN}/")
    record = json.loads((local_run(tmp_path) / "summary.json").read_text())
    shutil.rmtree(local_run(tmp_path))  # another machine
    for _ in range(2):
        code, text = user("ckpt_path=auto")
        assert code == 0 and "already finished" in text, text[-3000:]
        assert re.search(r"training images/s\s+│\s+-\s", text), text[-3000:]  # nothing trained here: no speed
        assert "epoch None" not in text and "step None" not in text, text[-3000:]
        assert re.search(rf"epochs / optimizer steps\s+│\s+{record['epochs']} / {record['steps']}\s", text)
        again = json.loads((local_run(tmp_path) / "summary.json").read_text())
        assert Path(again["last_checkpoint"]).is_file(), again  # a file that exists (the fetched copy)
        assert again["best_checkpoint"] == f"r2://{BUCKET}/{CKPTS}/best.ckpt", again
        assert again["metrics"] == record["metrics"] and again["images_per_s"] == 0.0
        assert (again["start_epoch"], again["start_step"], again["steps"]) == (record["epochs"] - 1, record["steps"],
                                                                             record["steps"]), again
    assert sha256_bucket(endpoint.client, f"runs/{RUN}/") == first
    assert_nothing_lost(cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))


# ------------------------------------------------------------------ 10. NEO_BUCKET means the same everywhere
def test_10_neo_bucket_means_the_same_for_neo_train(synth_root, tmp_path, endpoint, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = recipe(tmp_path, synth_root, storage=False)  # no storage= : the default group, as a user types it
    run = lambda *extra: neo_train(*args, f"storage.cache_dir={tmp_path}/cache", *extra)  # noqa
    for value, message in (("", "NEO_BUCKET='' is set but empty"),
                           (BUCKET, f"NEO_BUCKET='{BUCKET}' is a bare name, but no provider says which storage")):
        monkeypatch.setenv("NEO_BUCKET", value)
        for _ in range(2):
            code, text = run()
            assert code == 1 and message in flat(text) and "Traceback" not in text, text[-3000:]
            assert not (tmp_path / "outputs").exists() and not (tmp_path / "data/bucket").exists()
    monkeypatch.setenv("NEO_BUCKET", f"r2://{BUCKET}")  # a URL: that bucket, as for neo-weights and neo-export
    code, text = run()
    assert code == 0, text[-3000:]
    assert not (tmp_path / "data/bucket").exists()
    bucket_matches_local(endpoint, local_run(tmp_path) / "checkpoints")
    monkeypatch.setenv("NEO_BUCKET", str(tmp_path / "folder-bucket"))  # a folder: that folder
    code, text = run("run_name=second")
    assert code == 0, text[-3000:]
    assert (tmp_path / "folder-bucket/runs/second/checkpoints/last.ckpt").is_file()
    assert weights.main(["--cache-dir", str(tmp_path / "cache"), "pull",
                         "r2://neo-test/runs/mine/checkpoints/last.ckpt"]) == 0  # NEO_BUCKET=folder, URL given
    assert_nothing_lost(checkpoints=(tmp_path / "outputs", tmp_path / "folder-bucket"), cache=tmp_path / "cache",
                        bucket=(endpoint.client, BUCKET))


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_7_neo_eval_and_predict_refuse_credentials_before_hydra_writes(tmp_path, endpoint, capsys, monkeypatch,
                                                                     command):
    """Hydra writes .hydra/ and a log before the command runs: the credential guard stops it first."""
    import importlib

    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.chdir(tmp_path)
    main = importlib.import_module(f"neo.cli.{command}").main
    url = f"r2:/{KEY}:{SECRET_WITH_SLASH}@{BUCKET}/{CKPTS}/best.ckpt"
    extra = ["source=images/"] if command == "predict" else []
    for _ in range(2):
        GlobalHydra.instance().clear()
        monkeypatch.setattr("sys.argv", [f"neo-{command}", f"checkpoint={url}", f"paths.root_dir={tmp_path}", *extra])
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        text = captured.out + captured.err
        assert info.value.code == 1 and "holds credentials (shown as ***)" in flat(text), text
        assert KEY not in text and "slash0123" not in text
    assert [p for p in tmp_path.rglob("*")] == []  # no outputs/, no .hydra/, no log
    assert_nothing_lost(bucket=(endpoint.client, BUCKET))
