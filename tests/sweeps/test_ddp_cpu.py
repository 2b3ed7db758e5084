"""trainer=ddp_cpu: 2 gloo processes train on disjoint shards and validate together; the AP they log equals
neo-eval's single-process AP of the same checkpoint on the same data (7 val images: one rank gets a
padded duplicate, which the evaluator must drop)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import train_overrides
from tests.sweeps.helpers import cli, output, read_json, run_cli


@pytest.fixture(scope="module")
def odd_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 train / 7 val images at 320x180 with small objects of one class.

    An RT-DETR two steps from scratch predicts boxes about the size of its smallest anchors (16x9 px
    here); objects of about that size make its AP small but not zero, so the comparison means something.
    """
    from neo.data.synth import generate_synthetic_coco

    root = tmp_path_factory.mktemp("synth_odd")
    generate_synthetic_coco(root, num_train=16, num_val=7, size="320x180", num_classes=1, seed=1,
                            size_range=(0.045, 0.06), max_objects=5)
    return root


def test_two_process_ddp_trains_and_its_ap_equals_single_process_ap(odd_synth: Path, tmp_path: Path) -> None:
    trained = cli("neo-train", *train_overrides(
        odd_synth, tmp_path, "data.num_classes=1", "trainer=ddp_cpu", "run_name=ddp", "trainer.max_epochs=1",
        "callbacks.ema=null", "logger=none", "data.eval_batch_size=3"), cwd=tmp_path)
    assert trained.returncode == 0, output(trained)
    assert trained.stdout.count("neo-train: finished") == 1  # summary printed by rank 0 only
    run = tmp_path / "outputs/runs/ddp"
    record = read_json(run / "summary.json")
    assert record["status"] == "finished"
    assert record["steps"] == 2  # 16 images / batch 4 / 2 ranks: each rank saw its own half
    ddp_metrics = {k: v for k, v in record["metrics"].items() if k not in ("epoch", "step")}
    assert any(v > 0 for v in ddp_metrics.values()), ddp_metrics  # a real comparison, not 0 == 0

    evaluated = run_cli("neo-eval", f"checkpoint={run}/checkpoints/best.ckpt", "weights=raw", "num_workers=0",
                        f"output_dir={tmp_path}/eval", f"paths.root_dir={tmp_path}", cwd=tmp_path)
    assert evaluated.returncode == 0, output(evaluated)
    single = read_json(tmp_path / "eval/metrics.json")
    assert single["global_step"] == 2
    assert single["metrics"] == pytest.approx(ddp_metrics, abs=1e-9)
