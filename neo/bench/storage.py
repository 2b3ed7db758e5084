"""neo-bench storage: cache-hit resolve latency, cold pull throughput vs fs.get, step time during a background upload.

Runs against a local S3 HTTP server (moto, started as a subprocess on 127.0.0.1, so it does not share
this process's GIL) through the ``r2://`` protocol, or against ``--bucket`` if given (credentials from env).
Targets: cache hit median < 1 ms; pull >= 0.9x plain ``fs.get``; training step < 5% slower while a
200 MB checkpoint uploads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"cache_hit_ms": 1.0, "pull_ratio": 0.9, "step_slowdown_pct": 5.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local_s3(bucket: str) -> tuple[subprocess.Popen, str]:
    """moto's S3 server in a subprocess (lower priority: it stands in for a remote machine); creates ``bucket``."""
    import boto3

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: os.nice(10))
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(R2_ENDPOINT_URL=endpoint, R2_ACCESS_KEY_ID="bench", R2_SECRET_ACCESS_KEY="bench-secret")
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench-secret",
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    return proc, endpoint


def bench_cache_hit(settings, fs, root, work: Path, repeats: int) -> dict:
    from neo.storage import resolve
    from neo.storage.transfer import upload

    src = work / "hit.ckpt"
    src.write_bytes(os.urandom(8 * 2**20))
    upload(src, fs, f"{root}/checkpoints/hit.ckpt")
    resolve("hit.ckpt", storage=settings)  # cold: download + verify
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        resolve("hit.ckpt", storage=settings)
        times.append(time.perf_counter() - t)
    return {"cache_hit_ms": statistics.median(times) * 1e3, "cache_hit_p95_ms": sorted(times)[int(0.95 * repeats)] * 1e3}


def bench_pull(settings, fs, root, work: Path, size_mb: int, repeats: int) -> dict:
    from dataclasses import replace

    from neo.storage import resolve
    from neo.storage.transfer import upload

    src = work / "pull.ckpt"
    src.write_bytes(os.urandom(size_mb * 2**20))
    upload(src, fs, f"{root}/checkpoints/pull.ckpt")
    src.unlink()
    fs.get_file(f"{root}/checkpoints/pull.ckpt", str(work / "warmup"))  # warm the server and connections
    (work / "warmup").unlink()
    ours, plain = [], []
    for i in range(repeats):
        dest = work / f"plain-{i}"
        t = time.perf_counter()
        fs.get_file(f"{root}/checkpoints/pull.ckpt", str(dest))
        plain.append(time.perf_counter() - t)
        dest.unlink()
        cold = replace(settings, cache_dir=work / f"cold-{i}")
        t = time.perf_counter()
        resolve("pull.ckpt", storage=cold)
        ours.append(time.perf_counter() - t)
        shutil.rmtree(work / f"cold-{i}")
    mb = size_mb * 2**20 / 1e6
    return {"pull_MBps": mb / statistics.median(ours), "fs_get_MBps": mb / statistics.median(plain),
            "pull_ratio": statistics.median(plain) / statistics.median(ours)}


def bench_upload_during_steps(fs, root, work: Path, size_mb: int, steps: int) -> dict:
    import torch

    from neo.storage.uploader import BackgroundUploader

    torch.set_num_threads(1)
    a = torch.randn(384, 384)

    def step() -> float:
        t = time.perf_counter()
        x = a
        for _ in range(8):
            x = torch.tanh(x @ a)
        return time.perf_counter() - t

    for _ in range(20):
        step()
    baseline = [step() for _ in range(steps)]
    ckpt = work / "upload.ckpt"
    ckpt.write_bytes(os.urandom(size_mb * 2**20))
    uploader = BackgroundUploader(retries=1)
    uploader.submit_upload(fs, ckpt, f"{root}/runs/bench/checkpoints/upload.ckpt", label="upload.ckpt")
    during = []
    t0 = time.perf_counter()
    while uploader.pending():
        during.append(step())
    upload_s = time.perf_counter() - t0
    baseline2 = [step() for _ in range(steps)]
    base = statistics.median(baseline + baseline2)
    with_upload = statistics.median(during) if during else base
    return {"step_ms": base * 1e3, "step_during_upload_ms": with_upload * 1e3,
            "step_slowdown_pct": (with_upload / base - 1) * 100, "upload_s": upload_s, "steps_during_upload":
            len(during), "upload_failed": len(uploader.failed)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-bench storage", description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", default=None, help="bucket URL to use instead of a local moto S3 server")
    parser.add_argument("--pull-mb", type=int, default=100, help="object size for the pull benchmark")
    parser.add_argument("--upload-mb", type=int, default=200, help="checkpoint size uploaded during steps")
    parser.add_argument("--repeats", type=int, default=5, help="pull repetitions (median)")
    parser.add_argument("--hits", type=int, default=500, help="cache-hit resolves (median)")
    parser.add_argument("--steps", type=int, default=60, help="steps for the no-upload baseline")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from rich.table import Table

    from neo.console import stdout_console
    from neo.storage import StorageSettings
    from neo.storage.protocols import clear_instance_caches

    proc = None
    bucket = args.bucket
    if bucket is None:
        proc, _ = start_local_s3("neo-bench")
        clear_instance_caches()
        bucket = "r2://neo-bench"
    work = Path(tempfile.mkdtemp(prefix="neo-bench-storage-"))
    try:
        settings = StorageSettings(bucket=bucket, prefix="bench", cache_dir=work / "cache")
        fs, root = settings.bucket_fs()
        results = {}
        results.update(bench_cache_hit(settings, fs, root, work, args.hits))
        results.update(bench_pull(settings, fs, root, work, args.pull_mb, args.repeats))
        results.update(bench_upload_during_steps(fs, root, work, args.upload_mb, args.steps))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    table = Table(title=f"neo-bench storage ({bucket})")
    for col in ("metric", "value", "target"):
        table.add_column(col)
    checks = {"cache_hit_ms": lambda v: v < TARGETS["cache_hit_ms"], "pull_ratio": lambda v: v >= TARGETS["pull_ratio"],
              "step_slowdown_pct": lambda v: v < TARGETS["step_slowdown_pct"]}
    ok = True
    for key, value in results.items():
        target = ""
        if key in checks:
            passed = checks[key](value)
            ok &= passed
            sign = "<" if key != "pull_ratio" else ">="
            target = f"{sign} {TARGETS[key]} {'[green]ok[/]' if passed else '[red]MISSED[/]'}"
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value), target)
    stdout_console().print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
