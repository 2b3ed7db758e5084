"""All results of one evaluation in a folder: per-class table (CSV/JSON), PR curves and confusion matrix (PNG).

What training writes into ``<run>/results/`` for its best validation and ``neo-eval`` into its output
folder; the pictures are also returned for TensorBoard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neo.evaluation.confusion import confusion_matrix
from neo.evaluation.per_class import ClassResult, class_results, write_class_results
from neo.evaluation.plots import CONFUSION_PNG, PR_CURVES_PNG, confusion_plot, pr_curves, save_png
from neo.files import write_text_atomic

CONFUSION_JSON = "confusion_matrix.json"


@dataclass
class EvaluationResults:
    """Per-class rows (best AP first), the confusion counts [C + 1, C + 1] and both pictures (uint8 HWC RGB)."""

    rows: list[ClassResult]
    class_names: list[str]
    confusion: np.ndarray
    pr_image: np.ndarray
    confusion_image: np.ndarray
    files: list[Path] = field(default_factory=list)


def evaluation_results(cocoeval, score_threshold: float = 0.3, iou_threshold: float = 0.5) -> EvaluationResults:
    """Compute everything from an accumulated COCOeval (see :mod:`neo.evaluation.per_class`)."""
    names = {int(c["id"]): str(c["name"]) for c in cocoeval.cocoGt.dataset.get("categories", [])}
    class_names = [names.get(int(cid), str(cid)) for cid in cocoeval.params.catIds]
    matrix = confusion_matrix(cocoeval, score_threshold, iou_threshold)
    return EvaluationResults(
        rows=class_results(cocoeval), class_names=class_names, confusion=matrix,
        pr_image=pr_curves(cocoeval, 0.5),
        confusion_image=confusion_plot(matrix, class_names, score_threshold, iou_threshold),
    )


def write_evaluation_results(results: EvaluationResults, folder: str | Path, **context: object) -> list[Path]:
    """Write per_class.csv/json, pr_curves.png, confusion_matrix.png/.json into ``folder``; returns the paths."""
    folder = Path(folder)
    files = list(write_class_results(results.rows, folder, **context))
    files.append(save_png(results.pr_image, folder / PR_CURVES_PNG))
    files.append(save_png(results.confusion_image, folder / CONFUSION_PNG))
    document = {**context, "rows": "true class", "columns": "predicted class",
                "labels": [*results.class_names, "background"], "counts": results.confusion.tolist()}
    files.append(write_text_atomic(folder / CONFUSION_JSON, json.dumps(document, indent=2, default=str)))
    results.files = files
    return files
