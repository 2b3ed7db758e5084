"""neo-train end to end with an r2:// bucket: checkpoints pushed, local run deleted, ckpt_path=auto resumes from it.

Skipped until the training layer wires ``neo.checkpoints.sync.CheckpointSync`` into the Trainer (it is tested with a
tiny Lightning module in tests/checkpoints/test_sync.py meanwhile).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import train_overrides
from tests.storage.conftest import BUCKET, KEY_ID, SECRET, run_env
from tests.support.commands import run_cli

ROOT = Path(__file__).resolve().parents[2]
WIRED = any("CheckpointSync" in p.read_text() for p in (ROOT / "neo/training").glob("*.py"))
pytestmark = pytest.mark.skipif(not WIRED, reason="neo.training does not use CheckpointSync yet")


def neo_train(endpoint, out: Path, synth_root: Path, *extra: str) -> subprocess.CompletedProcess:
    """``neo-train`` in this process with the bucket's environment (the console script's own process is tested in
    tests/cli and tests/faults/test_secrets.py)."""
    args = train_overrides(synth_root, out, "model=tiny", "debug=limit", "run_name=e2e", "sync_checkpoints=true", "storage=r2",
                           f"storage.bucket=r2://{BUCKET}", f"storage.cache_dir={out}/cache", *extra)
    return run_cli("neo-train", *args, cwd=out, env=run_env(endpoint.env))


def test_train_push_delete_resume_from_bucket(endpoint, synth_root, tmp_path):
    first = neo_train(endpoint, tmp_path, synth_root, "trainer.max_epochs=1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    keys = {o["Key"] for o in endpoint.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    assert "runs/e2e-debug-limit/checkpoints/last.ckpt" in keys  # a debug run pushes when asked, under its own name
    assert "runs/e2e-debug-limit/checkpoints/last.ckpt.sha256" in keys
    for path in tmp_path.rglob("*"):  # credentials never reach the run tree (.hydra, logs, checkpoints)
        if path.is_file():
            blob = path.read_bytes()
            assert SECRET.encode() not in blob and KEY_ID.encode() not in blob, path
    shutil.rmtree(tmp_path / "outputs")
    second = neo_train(endpoint, tmp_path, synth_root, "trainer.max_epochs=2", "ckpt_path=auto")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"r2://{BUCKET}/runs/e2e-debug-limit/checkpoints/" in second.stdout + second.stderr
    last = torch.load(tmp_path / "outputs/runs/e2e-debug-limit/checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] == 8  # 4 steps restored from the bucket + 4 new ones
    best = json.loads((tmp_path / "outputs/runs/e2e-debug-limit/summary.json").read_text())["best_checkpoint"]
    # the summary names where the best checkpoint really is: written again here, or the bucket's copy
    assert Path(best).is_file() or best == f"r2://{BUCKET}/runs/e2e-debug-limit/checkpoints/best.ckpt", best
