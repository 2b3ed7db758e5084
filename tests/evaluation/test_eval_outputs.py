"""Export: detections, metrics and named predictions round-trip through JSON."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from coco_case import CLASS_NAMES, LABEL_TO_CATEGORY_ID, predictions, write_annotations
from pycocotools.coco import COCO

from neo.evaluation.coco import CocoEvaluator
from neo.evaluation.outputs import (
    prediction_record,
    read_json,
    write_detections,
    write_metrics,
    write_predictions,
)


def test_detections_and_metrics_round_trip(tmp_path):
    annotation_file = write_annotations(tmp_path)
    evaluator = CocoEvaluator(annotation_file, LABEL_TO_CATEGORY_ID)
    preds = predictions()
    evaluator.update([preds[1], preds[2], preds[3]], [1, 2, 3])
    detections, metrics = evaluator.detections(), evaluator.compute()

    path = write_detections(tmp_path / "out" / "detections.json", detections)
    assert read_json(path) == detections
    with contextlib.redirect_stdout(io.StringIO()):
        loaded = COCO(str(annotation_file)).loadRes(str(path))  # the file is valid COCO results
    assert len(loaded.getAnnIds()) == 6

    metrics_path = write_metrics(tmp_path / "out" / "metrics.json", metrics, checkpoint="best.ckpt")
    assert read_json(metrics_path) == {"metrics": pytest.approx(metrics), "checkpoint": "best.ckpt"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["detections.json", "metrics.json"]


def test_prediction_record_names_and_order(tmp_path):
    prediction = {
        "boxes": torch.tensor([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 5.0, 5.0], [1.0, 1.0, 2.0, 2.0]]),
        "scores": torch.tensor([0.5, 0.9, 0.1]),
        "labels": torch.tensor([2, 0, 1]),
    }
    record = prediction_record(prediction, CLASS_NAMES, LABEL_TO_CATEGORY_ID, 0.2, file="a.jpg", width=1920)
    assert record["file"] == "a.jpg" and record["width"] == 1920
    assert [d["category_name"] for d in record["detections"]] == ["car", "dog"]  # by score, 0.1 dropped
    dog = record["detections"][1]
    assert dog["category_id"] == 7 and dog["label"] == 2
    assert dog["bbox_xyxy"] == [10.0, 20.0, 50.0, 80.0] and dog["bbox_xywh"] == [10.0, 20.0, 40.0, 60.0]
    path = write_predictions(tmp_path / "predictions.json", [record], classes=CLASS_NAMES)
    assert read_json(path) == {"classes": CLASS_NAMES, "images": [record]}
    with pytest.raises(ValueError, match="label 5 has no name"):
        prediction_record({"boxes": [[0, 0, 1, 1]], "scores": [1.0], "labels": [5]}, CLASS_NAMES)
