"""Pictures of an evaluation: precision-recall curves per class and the confusion matrix, as RGB arrays.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no display, no global state),
returned as uint8 [H, W, 3] RGB arrays that go both to PNG files (``save_png``) and to TensorBoard
(``add_image(tag, array, step, dataformats="HWC")``). Class colours are the ones the box drawings use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from neo.evaluation.draw import class_color
from neo.evaluation.per_class import iou_index
from neo.files import atomic_path

PR_CURVES_PNG = "pr_curves.png"
CONFUSION_PNG = "confusion_matrix.png"


def _rgb(figure: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def pr_curves(cocoeval, iou: float = 0.5) -> np.ndarray:
    """PR curves at one IoU threshold, one line per class (legend: name and AP at that IoU) plus their mean.

    Reads ``eval["precision"][t, :, k, area=all, maxDets=last]`` over ``params.recThrs`` (101 points);
    classes without ground truth in the evaluated images are left out. Returns uint8 [H, W, 3] RGB.
    """
    precision = np.asarray(cocoeval.eval["precision"], dtype=np.float64)[iou_index(cocoeval, iou), :, :, 0, -1]
    recall = np.asarray(cocoeval.params.recThrs, dtype=np.float64)
    names = {int(c["id"]): str(c["name"]) for c in cocoeval.cocoGt.dataset.get("categories", [])}
    figure = Figure(figsize=(11, 6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    curves = []
    for k, category_id in enumerate(int(c) for c in cocoeval.params.catIds):
        curve = precision[:, k]
        if (curve <= -1).all():
            continue
        curve = np.where(curve > -1, curve, 0.0)
        curves.append(curve)
        color = tuple(v / 255 for v in class_color(k))
        axes.plot(recall, curve, color=color, linewidth=1.5,
                  label=f"{names.get(category_id, category_id)}  {curve.mean():.3f}")
    if curves:
        mean = np.mean(curves, axis=0)
        axes.plot(recall, mean, color="black", linewidth=3, label=f"all classes  {mean.mean():.3f}")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title=f"class  AP@{iou:g}", fontsize=9,
                    ncol=1 if len(curves) <= 25 else 2)  # beside the plot: never over a curve
    else:
        axes.text(0.5, 0.5, "no ground truth in the evaluated images", ha="center", va="center")
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
             title=f"Precision-recall at IoU {iou:g} ({len(cocoeval.params.imgIds)} images)")
    axes.grid(alpha=0.3)
    return _rgb(figure)


def confusion_plot(matrix: np.ndarray, class_names: Sequence[str], score_threshold: float,
                   iou_threshold: float) -> np.ndarray:
    """Heat map of a [C + 1, C + 1] confusion matrix (rows true, columns predicted, last = background).

    Colour is the share of each true-class row (how a class's boxes end up); cells print the counts.
    Returns uint8 [H, W, 3] RGB.
    """
    labels = [*class_names, "background"]
    size = len(labels)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=np.float64), where=rows > 0)
    side = min(16.0, 3.0 + 0.6 * size)
    figure = Figure(figsize=(side + 1.5, side), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class's boxes")
    if size <= 30:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                axes.text(j, i, str(count), ha="center", va="center", fontsize=9,
                          color="white" if shares[i, j] > 0.5 else "black")
    axes.set_xticks(range(size), labels, rotation=45, ha="right")
    axes.set_yticks(range(size), labels)
    axes.set(xlabel="predicted", ylabel="true",
             title=f"Confusion matrix (score >= {score_threshold:g}, IoU >= {iou_threshold:g})")
    return _rgb(figure)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 [H, W, 3] RGB array as a PNG, atomically (a reader never sees half a picture)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not encode {path.name} as PNG")
        tmp.write_bytes(encoded.tobytes())
    return path
