"""What a short real training run leaves to look at: per-class results, PR curves, confusion matrix and
prediction grids in the run folder and in TensorBoard, and the validation loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from neo.training.run import train
from tests.conftest import train_overrides
from tests.training.helpers import compose_train


def _events(run_dir: Path) -> EventAccumulator:
    folder = run_dir / "tensorboard"  # one history per run (a resume appends to it)
    assert list(folder.glob("events.out.tfevents.*")), f"no TensorBoard events in {folder}"
    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


STEPS_PER_EPOCH = 2  # training only has to produce something to validate: the full validation set is what counts


def _run(synth_root, out, *extra):
    cfg = compose_train(train_overrides(synth_root, out, "model=tiny", "trainer.max_epochs=2",
                                        f"trainer.limit_train_batches={STEPS_PER_EPOCH}",
                                        "trainer.check_val_every_n_epoch=1", *extra))
    return train(cfg)


@pytest.fixture(scope="module")
def short_run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("results_run")
    summary = _run(synth_root, out)
    return summary, Path(summary.run_dir)


def test_run_folder_holds_the_best_validations_results(short_run, synth_root) -> None:
    summary, run_dir = short_run
    results = run_dir / "results"
    for name in ("per_class.csv", "per_class.json", "pr_curves.png", "confusion_matrix.png",
                 "confusion_matrix.json", "val_predictions.jpg"):
        assert (results / name).stat().st_size > 0, name
    document = json.loads((results / "per_class.json").read_text())
    annotations = json.loads(next((synth_root / "annotations").glob("*val*.json")).read_text())
    names = sorted(c["name"] for c in annotations["categories"])
    assert sorted(row["name"] for row in document["classes"]) == names
    # the counts are the validation ground truth's (8 images, every box non-crowd)
    assert sum(row["instances"] for row in document["classes"]) == len(annotations["annotations"])
    assert max(row["images"] for row in document["classes"]) <= len(annotations["images"])
    # the files describe the best validation: the epoch whose AP the summary reports
    best = summary.metrics
    assert document["epoch"] == best["epoch"]
    aps = [row["AP"] for row in document["classes"] if row["instances"]]
    assert aps == sorted(aps, reverse=True)
    assert abs(sum(aps) / len(aps) - best["AP"]) < 1e-6  # COCO AP is the mean of the per-class APs
    csv_lines = (results / "per_class.csv").read_text().splitlines()
    assert csv_lines[0] == "class,category_id,AP,AP50,images,instances" and len(csv_lines) == len(names) + 1
    confusion = json.loads((results / "confusion_matrix.json").read_text())
    assert confusion["labels"][-1] == "background" and len(confusion["counts"]) == len(names) + 1
    # every ground-truth box lands in exactly one cell of its true-class row
    assert sum(sum(row) for row in confusion["counts"][:-1]) == len(annotations["annotations"])


def test_tensorboard_holds_pictures_per_class_ap_and_val_loss(short_run) -> None:
    summary, run_dir = short_run
    events = _events(run_dir)
    images, scalars = events.Tags()["images"], events.Tags()["scalars"]
    for tag in ("val/predictions", "val/pr_curves", "val/confusion_matrix"):
        assert tag in images, f"{tag} missing from {images}"
        assert len(events.Images(tag)) == 2  # one per validation
    assert "val/loss" in scalars
    assert all(v.value > 0 for v in events.Scalars("val/loss"))
    assert any(tag.startswith("val_per_class/AP/") for tag in scalars)
    assert any(tag.startswith("val_per_class/AP50/") for tag in scalars)


def test_sparse_grid_cadence_still_logs_the_last_validation(synth_root, tmp_path) -> None:
    """every_n_epochs larger than the run: the first (best so far) and the last validation still show."""
    summary = _run(synth_root, tmp_path, "trainer.max_epochs=3", "callbacks.image_grid.every_n_epochs=50",
                   "callbacks.validation_results=null")
    steps = [event.step for event in _events(Path(summary.run_dir)).Images("val/predictions")]
    assert steps[0] == STEPS_PER_EPOCH and steps[-1] == summary.steps == 3 * STEPS_PER_EPOCH
