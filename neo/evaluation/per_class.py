"""Per-class results of one COCO evaluation: AP, AP50, images and instances per class, as a table and files.

Everything is read from a finished COCOeval (pycocotools or faster-coco-eval, after ``accumulate``):
``eval["precision"]`` is [T, R, K, A, M] (IoU thresholds x 101 recall points x categories x area ranges
x max-detection limits), -1 where undefined. Images and instances are the non-crowd ground truth of the
evaluated images (``params.imgIds``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from neo.console import stdout_console
from neo.files import write_text_atomic

PER_CLASS_CSV = "per_class.csv"
PER_CLASS_JSON = "per_class.json"
COLUMNS = ("class", "category_id", "AP", "AP50", "images", "instances")


@dataclass(frozen=True)
class ClassResult:
    """One category's figures; AP/AP50 are -1 when the evaluated images hold none of its ground truth."""

    name: str
    category_id: int
    AP: float
    AP50: float
    images: int
    instances: int


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else -1.0


def iou_index(cocoeval, iou: float) -> int:
    """Index of an IoU threshold (e.g. 0.5) in ``cocoeval.params.iouThrs``."""
    thresholds = np.asarray(cocoeval.params.iouThrs, dtype=np.float64)
    index = int(np.argmin(np.abs(thresholds - iou)))
    if abs(thresholds[index] - iou) > 1e-6:
        raise ValueError(f"IoU {iou} is not one of the evaluation's thresholds {thresholds.tolist()}")
    return index


def ground_truth_counts(cocoeval) -> dict[int, tuple[int, int]]:
    """{category id: (images holding it, instances)} over the evaluated images, crowd boxes excluded."""
    image_ids = set(int(i) for i in cocoeval.params.imgIds)
    images: dict[int, set[int]] = {}
    instances: dict[int, int] = {}
    for annotation in cocoeval.cocoGt.dataset.get("annotations", []):
        if int(annotation["image_id"]) not in image_ids or annotation.get("iscrowd", 0):
            continue
        category_id = int(annotation["category_id"])
        images.setdefault(category_id, set()).add(int(annotation["image_id"]))
        instances[category_id] = instances.get(category_id, 0) + 1
    return {cid: (len(images[cid]), instances[cid]) for cid in instances}


def class_results(cocoeval) -> list[ClassResult]:
    """Per-class results of an accumulated COCOeval, best AP first (classes without ground truth last).

    AP is the mean of the defined precision[T, R, k, area=all, maxDets=last]; AP50 the same at IoU 0.5.
    """
    precision = np.asarray(cocoeval.eval["precision"], dtype=np.float64)  # [T, R, K, A, M]
    at50 = iou_index(cocoeval, 0.5)
    counts = ground_truth_counts(cocoeval)
    names = {int(c["id"]): str(c["name"]) for c in cocoeval.cocoGt.dataset.get("categories", [])}
    rows = []
    for k, category_id in enumerate(int(c) for c in cocoeval.params.catIds):
        images, instances = counts.get(category_id, (0, 0))
        rows.append(ClassResult(
            name=names.get(category_id, str(category_id)), category_id=category_id,
            AP=_mean_defined(precision[:, :, k, 0, -1]), AP50=_mean_defined(precision[at50, :, k, 0, -1]),
            images=images, instances=instances,
        ))
    return sorted(rows, key=lambda r: (r.instances == 0, -r.AP, r.name))


def _figure(value: float) -> str:
    return "-" if value < 0 else f"{value:.3f}"


def class_table(rows: Sequence[ClassResult], title: str) -> Table:
    """A rich table of per-class results; headers and title are never cut (columns hold their width)."""
    table = Table(title=escape(title), title_justify="left")
    table.add_column("class", min_width=5, overflow="fold")
    for header in ("AP", "AP50", "images", "instances"):
        table.add_column(header, justify="right", min_width=len(header), no_wrap=True)
    for row in rows:
        table.add_row(escape(row.name), _figure(row.AP), _figure(row.AP50), str(row.images), str(row.instances))
    return table


def print_class_table(rows: Sequence[ClassResult], title: str, console: Console | None = None) -> None:
    """Print the per-class table (e.g. at the end of training and from ``neo-eval``)."""
    (console or stdout_console()).print(class_table(rows, title))


def write_class_results(rows: Sequence[ClassResult], folder: str | Path, **context: object) -> tuple[Path, Path]:
    """Write ``per_class.csv`` and ``per_class.json`` (rows plus ``context``, e.g. epoch) into ``folder``.

    Both are written atomically: a reader never sees half a file. Returns (csv path, json path).
    """
    folder = Path(folder)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row.name, row.category_id, f"{row.AP:.6f}", f"{row.AP50:.6f}", row.images, row.instances])
    csv_path = write_text_atomic(folder / PER_CLASS_CSV, buffer.getvalue())
    document = {**context, "classes": [asdict(row) for row in rows]}
    json_path = write_text_atomic(folder / PER_CLASS_JSON, json.dumps(document, indent=2, default=str))
    return csv_path, json_path


def read_class_results(folder: str | Path) -> tuple[list[ClassResult], dict]:
    """Rows and context of a ``per_class.json`` written by :func:`write_class_results`."""
    document = json.loads((Path(folder) / PER_CLASS_JSON).read_text())
    rows = [ClassResult(**row) for row in document.pop("classes")]
    return rows, document
