"""Issue 11's user sequences: after a real run, nothing a user types next changes a byte of it, locally or in
the bucket (a real S3 server on 127.0.0.1): the same command again, ``debug=limit`` and ``debug=fast``, the
finished run with ``ckpt_path=auto``, a debug sweep then the real sweep, the same sweep twice.

Every command goes through neo-train's real Hydra entry point (in this process, for speed); every step ends
by comparing sha256 of every file of the first run's folder and of every bucket object under its prefix.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from tests.faults.conftest import assert_nothing_lost, flat
from tests.storage.conftest import BUCKET
from tests.support.commands import output, run_cli
from tests.sweeps.helpers import write_tiny_experiment

SWEEP = ["optim.lr=1e-4,2e-4"]
LR_POINTS = ("optim.lr=0.0001", "optim.lr=0.0002")


def neo_train(*args: str) -> tuple[int, str]:
    """``neo-train ARGS`` through its console-script entry point in this process; (exit code, stdout + stderr)."""
    result = run_cli("neo-train", *args)
    return result.returncode, output(result)


def sha256_tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative names)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def sha256_bucket(client, prefix: str) -> dict[str, str]:
    """sha256 of every bucket object under ``prefix``."""
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    return {k: hashlib.sha256(client.get_object(Bucket=BUCKET, Key=k)["Body"].read()).hexdigest() for k in keys}


@pytest.fixture
def args(synth_root: Path, tmp_path: Path, endpoint) -> list[str]:
    """A tiny recipe ``experiment=mine`` (2 steps + 1 val batch per epoch) pushing to r2://neo-test: settings in
    an experiment, as a user's recipe is, so sweep folders are named after the swept overrides only."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the S3 server runs in this process: not the run's log
    selected = write_tiny_experiment(tmp_path / "conf", synth_root, name="mine")
    recipe = tmp_path / "conf/experiment/mine.yaml"
    text = recipe.read_text().replace("trainer:\n", "trainer:\n  max_epochs: 1\n  limit_train_batches: 2\n"
                                                  "  limit_val_batches: 1\n")
    text = text.replace("callbacks:\n", "callbacks:\n  ema: null\n  image_grid: null\n")
    recipe.write_text(text + f"defaults:\n  - override /storage: r2\n  - _self_\nstorage:\n  bucket: r2://{BUCKET}\n"
                             f"  cache_dir: {tmp_path}/cache\n")
    return [*selected, f"paths.root_dir={tmp_path}"]


def test_nothing_a_user_types_next_changes_the_first_run(args, tmp_path: Path, endpoint) -> None:
    run = lambda *extra: neo_train(*args, *extra)  # noqa: E731
    sweep = lambda *extra: neo_train("-m", *args, *SWEEP, *extra)  # noqa: E731
    client, runs = endpoint.client, tmp_path / "outputs/runs"

    code, text = run()
    assert code == 0, text[-3000:]
    mine = runs / "mine"
    local, remote = sha256_tree(mine), sha256_bucket(client, "runs/mine/")
    assert {"checkpoints/best.ckpt", "checkpoints/last.ckpt", "summary.json", ".hydra/config.yaml"} <= set(local)
    assert [k for k in local if k.startswith("tensorboard/events.")]  # one TensorBoard folder, no version_N
    assert "runs/mine/checkpoints/last.ckpt" in remote, text

    def unchanged(step: str) -> None:
        assert sha256_tree(mine) == local, f"{step} changed the first run's folder"
        assert sha256_bucket(client, "runs/mine/") == remote, f"{step} changed the first run's bucket objects"

    # the same command again: refused before anything is written, naming both places and the three ways on
    code, text = run()
    assert code == 1, text[-3000:]
    message = flat(text)
    assert str(mine / "checkpoints") in message and f"r2://{BUCKET}/runs/mine/checkpoints" in message, message
    assert "ckpt_path=auto" in message and "run_name=mine_2" in message and "overwrite=true" in message
    assert "Traceback" not in text
    unchanged("the same command again")

    # the README's short real run, then one batch: their own folders, nothing pushed
    for mode, extra in (("limit", "trainer.max_epochs=1"), ("fast", "print_config=false")):
        code, text = run(f"debug={mode}", extra)
        assert code == 0, text[-3000:]
        assert (runs / f"mine-debug-{mode}/summary.json").is_file()
        unchanged(f"debug={mode}")
    assert (runs / "mine-debug-limit/checkpoints/best.ckpt").is_file()
    assert sha256_bucket(client, "runs/mine-debug") == {}  # debug runs push nothing unless asked

    # the finished run with ckpt_path=auto: says so, shows its summary, exits 0
    code, text = run("ckpt_path=auto")
    assert code == 0, text[-3000:]
    assert "already finished" in flat(text) and "trainer.max_epochs" in flat(text) and "AP (val, best)" in text
    assert "epoch None" not in text and "step None" not in text
    unchanged("ckpt_path=auto on the finished run")

    # a debug sweep, then the real sweep with ckpt_path=auto: separate folders, the real one starts fresh
    sweeps = tmp_path / "outputs/sweeps/mine"
    code, text = neo_train("-m", *args, "optim.lr=1e-4", "debug=limit", "trainer.max_epochs=1")
    assert code == 0, text[-3000:]
    debug_points = {p.name for p in sweeps.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert debug_points == {"debug=limit,optim.lr=0.0001,trainer.max_epochs=1"}
    assert (sweeps / debug_points.pop() / "checkpoints/last.ckpt").is_file()
    code, text = sweep("ckpt_path=auto")
    assert code == 0, text[-3000:]
    assert "2 runs of this invocation" in text and "not finished" not in text, text[-3000:]
    for point in LR_POINTS:
        record = (sweeps / point / "summary.json").read_text()
        assert '"resumed_from": null' in record, f"{point} resumed from a debug checkpoint: {record}"
    unchanged("a debug sweep and the real sweep")
    first_sweep = {p: sha256_tree(sweeps / p) for p in LR_POINTS}
    assert all("checkpoints/last.ckpt" in files and "summary.json" in files for files in first_sweep.values())
    first_sweep_bucket = sha256_bucket(client, "runs/mine__optim.lr")
    assert len([k for k in first_sweep_bucket if k.endswith("last.ckpt")]) == 2

    # the same sweep twice: with ckpt_path=auto both points are finished (exit 0); without, both are refused
    code, text = sweep("ckpt_path=auto")
    assert code == 0 and "2 runs of this invocation" in text and "already finished" in text, text[-3000:]
    code, text = sweep()
    assert code == 1, text[-3000:]
    assert "2 runs of this invocation, 2 not finished" in text and "refused" in text, text[-3000:]
    markdown = (sweeps / "summary.md").read_text()
    assert "Earlier runs in this folder (1" in markdown  # the debug sweep's point, listed apart
    assert {p: _outputs(sweeps / p) for p in LR_POINTS} == {p: _outputs(first_sweep[p]) for p in LR_POINTS}
    assert sha256_bucket(client, "runs/mine__optim.lr") == first_sweep_bucket
    unchanged("the same sweep twice")
    assert_nothing_lost(checkpoints=(runs, sweeps), bucket=(client, BUCKET))


def _outputs(tree: Path | dict[str, str]) -> dict[str, str]:
    """A sweep point's products (checkpoints, summary, logs): Hydra itself rewrites a re-run point's ``.hydra/``
    and appends to its job log before neo-train is called."""
    files = sha256_tree(tree) if isinstance(tree, Path) else tree
    return {k: v for k, v in files.items() if not k.startswith(".hydra/") and not k.endswith(".log")}
