"""Per-class results, confusion matrix and pictures of one evaluation, on the hand-computed COCO case
(both backends): known per-class AP/AP50, image and instance counts, a known confusion matrix, files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from coco_case import CAR, DOG, LABEL_TO_CATEGORY_ID, PERSON, predictions, write_annotations
from rich.console import Console

from neo.evaluation.coco import CocoEvaluator
from neo.evaluation.confusion import confusion_matrix
from neo.evaluation.per_class import ClassResult, class_results, class_table, read_class_results
from neo.evaluation.results import evaluation_results, write_evaluation_results

BACKENDS = ["faster", "pycocotools"]


def _cocoeval(tmp_path, backend, images="seen"):
    evaluator = CocoEvaluator(write_annotations(tmp_path), LABEL_TO_CATEGORY_ID, backend, images=images)
    preds = predictions()
    evaluator.update([preds[1], preds[2], preds[3]], torch.tensor([1, 2, 3]))
    metrics = evaluator.compute()
    return evaluator.last_cocoeval, metrics


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_class_figures_match_the_hand_computed_case(tmp_path, backend):
    cocoeval, metrics = _cocoeval(tmp_path, backend)
    rows = class_results(cocoeval)
    assert [r.name for r in rows] == ["car", "person", "dog"]  # best AP first
    by_name = {r.name: r for r in rows}
    assert by_name["car"].AP == pytest.approx(CAR) and by_name["car"].AP50 == pytest.approx(CAR)
    assert by_name["person"].AP == pytest.approx(PERSON) and by_name["person"].AP50 == pytest.approx(PERSON)
    assert by_name["dog"].AP == pytest.approx(DOG) and by_name["dog"].AP50 == pytest.approx(1.0)
    # car: A on image 1 and D on image 2 (the crowd C is not an instance); image 4 was never seen
    assert (by_name["car"].images, by_name["car"].instances) == (2, 2)
    assert (by_name["person"].images, by_name["person"].instances) == (1, 1)
    assert (by_name["dog"].category_id, by_name["dog"].images, by_name["dog"].instances) == (7, 1, 1)
    assert np.mean([r.AP for r in rows]) == pytest.approx(metrics["AP"])


def test_all_images_scope_counts_the_unseen_image(tmp_path):
    cocoeval, _ = _cocoeval(tmp_path, "faster", images="all")
    car = next(r for r in class_results(cocoeval) if r.name == "car")
    assert (car.images, car.instances) == (3, 3)  # car F on image 4 now counts (as a miss)
    assert car.AP < CAR


@pytest.mark.parametrize("backend", BACKENDS)
def test_confusion_matrix_counts_hits_misses_false_alarms_and_ignores_crowds(tmp_path, backend):
    cocoeval, _ = _cocoeval(tmp_path, backend)
    matrix = confusion_matrix(cocoeval, score_threshold=0.3, iou_threshold=0.5)
    # rows true (car, person, dog, background), columns predicted
    expected = np.array([
        [1, 0, 0, 1],  # car A found; car D missed
        [0, 1, 0, 0],  # person B found
        [0, 0, 1, 0],  # dog E found at IoU 0.625
        [1, 1, 0, 0],  # car false positive (image 1), person false positive (image 3); crowd det ignored
    ])
    np.testing.assert_array_equal(matrix, expected)
    # a stricter IoU turns the dog match into a miss plus a false alarm
    strict = confusion_matrix(cocoeval, score_threshold=0.3, iou_threshold=0.7)
    assert strict[2, 2] == 0 and strict[2, 3] == 1 and strict[3, 2] == 1
    # a higher score threshold drops the 0.6-0.7 detections: person B becomes a miss
    confident = confusion_matrix(cocoeval, score_threshold=0.75, iou_threshold=0.5)
    assert confident[1, 3] == 1 and confident[3].sum() == 0


def test_confusion_matrix_counts_a_class_mix_up_off_the_diagonal(tmp_path):
    evaluator = CocoEvaluator(write_annotations(tmp_path), LABEL_TO_CATEGORY_ID, "faster")
    # image 2: the dog E box predicted as "person" (label 1)
    evaluator.update([{"boxes": torch.tensor([[100.0, 100.0, 200.0, 200.0]]), "scores": torch.tensor([0.9]),
                       "labels": torch.tensor([1])}], [2])
    evaluator.compute()
    matrix = confusion_matrix(evaluator.last_cocoeval)
    assert matrix[2, 1] == 1 and matrix[0, 3] == 1 and matrix.sum() == 2


def test_files_and_pictures(tmp_path):
    cocoeval, _ = _cocoeval(tmp_path, "faster")
    results = evaluation_results(cocoeval)
    for picture in (results.pr_image, results.confusion_image):
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
        assert picture.shape[0] >= 400 and picture.std() > 10  # a real drawing, not a blank canvas
    folder = tmp_path / "results"
    files = write_evaluation_results(results, folder, epoch=7, split="val")
    assert sorted(p.name for p in files) == ["confusion_matrix.json", "confusion_matrix.png", "per_class.csv",
                                             "per_class.json", "pr_curves.png"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left behind
    with open(folder / "per_class.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [row["class"] for row in table] == ["car", "person", "dog"]
    assert float(table[2]["AP50"]) == pytest.approx(1.0) and table[0]["instances"] == "2"
    rows, context = read_class_results(folder)
    assert rows == results.rows and context == {"epoch": 7, "split": "val"}
    confusion = json.loads((folder / "confusion_matrix.json").read_text())
    assert confusion["labels"] == ["car", "person", "dog", "background"]
    assert confusion["counts"] == results.confusion.tolist()


def test_table_keeps_titles_headers_and_brackets_on_a_narrow_terminal():
    rows = [ClassResult("traffic light [small]", 10, 0.5, 0.75, 3, 4), ClassResult("bus", 6, -1.0, -1.0, 0, 0)]
    console = Console(width=60, record=True, color_system=None)
    console.print(class_table(rows, "per class [val] epoch 3: outputs/runs/a_long_run_name/results"))
    text = console.export_text()
    assert "…" not in text  # nothing cut
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    assert [h.strip() for h in header.split("┃")[1:-1]] == ["class", "AP", "AP50", "images", "instances"]
    assert "per class [val] epoch 3:" in text and "a_long_run_name/results" in text  # markup kept, title whole
    assert "traffic light" in text and "[small]" in text  # a long name wraps inside its cell
    bus = next(line for line in text.splitlines() if "bus" in line)
    assert [c.strip() for c in bus.split("│")[1:-1]] == ["bus", "-", "-", "0", "0"]  # no GT: "-", not -1
