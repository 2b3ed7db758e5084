"""Write evaluation and prediction outputs as JSON: COCO detections, metrics, named predictions.

Files are written atomically (a temporary file beside the target, then ``os.replace``) and parent
directories are created, so a crash never leaves a half-written JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neo.evaluation.arrays import as_numpy
from neo.files import write_text_atomic


def write_json(path: str | Path, payload: Any) -> Path:
    """Atomically write ``payload`` as indented JSON; returns the path."""
    return write_text_atomic(path, json.dumps(payload, indent=1) + "\n")


def read_json(path: str | Path) -> Any:
    """Load a JSON file written by this module."""
    with open(path) as handle:
        return json.load(handle)


def write_detections(path: str | Path, detections: Sequence[Mapping[str, Any]]) -> Path:
    """COCO results JSON (``CocoEvaluator.detections()``): a list of
    {"image_id", "category_id" (original), "bbox" [x, y, w, h] px, "score"}; loadable by ``COCO.loadRes``.
    """
    for key in ("image_id", "category_id", "bbox", "score"):
        if detections and key not in detections[0]:
            raise KeyError(
                f"detections must be COCO results dicts with {key!r}; got keys {sorted(detections[0])}"
            )
    return write_json(path, [dict(d) for d in detections])


def write_metrics(path: str | Path, metrics: Mapping[str, float], **context: Any) -> Path:
    """Metrics JSON: {"metrics": {name: float}, **context} (context: checkpoint, dataset, backend, ...)."""
    clean = {str(k): float(v) for k, v in metrics.items()}
    return write_json(path, {"metrics": clean, **context})


def prediction_record(
    prediction: Mapping[str, Any],
    class_names: Sequence[str],
    label_to_category_id: Sequence[int] | None = None,
    score_threshold: float = 0.0,
    **image_info: Any,
) -> dict[str, Any]:
    """One image's detections with names, for neo-predict's JSON.

    Args:
        prediction: postprocessor dict "boxes" [K, 4] xyxy ORIGINAL px, "scores" [K], "labels" [K].
        class_names: name per contiguous label.
        label_to_category_id: adds the original "category_id" when given.
        image_info: written as-is first (e.g. file="a.jpg", width=1920, height=1080, frame=12).
    Returns:
        {**image_info, "detections": [{"label", "category_id"?, "category_name", "score",
        "bbox_xyxy": [x1, y1, x2, y2], "bbox_xywh": [x, y, w, h]}, ...]} sorted by descending score.
    """
    boxes = as_numpy(prediction["boxes"], np.float64).reshape(-1, 4)
    scores = as_numpy(prediction["scores"], np.float64).reshape(-1)
    labels = as_numpy(prediction["labels"], np.int64).reshape(-1)
    detections = []
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < score_threshold:
            continue
        label = int(labels[i])
        if not 0 <= label < len(class_names):
            raise ValueError(f"label {label} has no name: class_names has {len(class_names)} entries")
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        entry: dict[str, Any] = {"label": label}
        if label_to_category_id is not None:
            entry["category_id"] = int(label_to_category_id[label])
        entry.update(
            category_name=class_names[label],
            score=float(scores[i]),
            bbox_xyxy=[x1, y1, x2, y2],
            bbox_xywh=[x1, y1, x2 - x1, y2 - y1],
        )
        detections.append(entry)
    return {**image_info, "detections": detections}


def write_predictions(path: str | Path, records: Sequence[Mapping[str, Any]], **context: Any) -> Path:
    """Predictions JSON: {**context, "images": [prediction_record, ...]} (context: checkpoint, classes...)."""
    return write_json(path, {**context, "images": [dict(r) for r in records]})
