"""COCO-sized inputs for ``neo-bench scale``: annotation files of COCO's shape and size, images that are a
few real JPEGs reached through symbolic links, and detections shaped like a model's at 300 per image.

The JSON is streamed to disk in chunks (a 118k-image train file with polygons is ~400 MB), so making it
never holds the whole text in memory. Numbers follow COCO: 7.3 boxes per image on average, 80 sparse
category ids, ~1% crowd, one polygon per box.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from neo.data.coco_categories import COCO_CATEGORIES
from neo.files import atomic_path

IMAGE_SIZE = (480, 640)  # (height, width) of every generated image record and JPEG
DISTINCT_JPEGS = 4


def _annotation_records(rng: np.random.Generator, image_ids: np.ndarray, first_id: int,
                        polygon_points: int) -> list[dict]:
    """COCO annotation dicts for ``image_ids`` (one entry per box; ids from ``first_id``)."""
    n = len(image_ids)
    h, w = IMAGE_SIZE
    wh = np.column_stack([rng.uniform(4, w * 0.6, n), rng.uniform(4, h * 0.6, n)])
    xy = rng.uniform(0, 1, (n, 2)) * (np.asarray([w, h]) - wh)
    category_ids = np.asarray([c for c, _ in COCO_CATEGORIES])[rng.integers(0, len(COCO_CATEGORIES), n)]
    crowd = rng.random(n) < 0.01
    angles = np.linspace(0, 2 * np.pi, polygon_points, endpoint=False)
    records = []
    for k in range(n):
        (x, y), (bw, bh) = xy[k], wh[k]
        polygon = np.column_stack([x + bw / 2 * (1 + np.cos(angles)), y + bh / 2 * (1 + np.sin(angles))])
        records.append({
            "segmentation": [np.round(polygon, 2).ravel().tolist()], "area": round(float(bw * bh * 0.8), 2),
            "iscrowd": int(crowd[k]), "image_id": int(image_ids[k]),
            "bbox": [round(float(x), 2), round(float(y), 2), round(float(bw), 2), round(float(bh), 2)],
            "category_id": int(category_ids[k]), "id": first_id + k,
        })
    return records


def write_coco_like(path: Path, num_images: int, boxes_per_image: float = 7.27, seed: int = 0,
                    polygon_points: int = 16, chunk: int = 20_000) -> dict[str, int]:
    """Write a COCO instances JSON of ``num_images`` 640x480 images named ``{id:012d}.jpg`` and about
    ``boxes_per_image`` boxes each (Poisson); returns {"images", "annotations", "bytes"}."""
    rng = np.random.default_rng(seed)
    h, w = IMAGE_SIZE
    ids = np.arange(1, num_images + 1)
    counts = rng.poisson(boxes_per_image, num_images)
    box_images = np.repeat(ids, counts)
    with atomic_path(path) as tmp, open(tmp, "w") as out:
        out.write('{"info": {"description": "neo-bench scale: COCO-sized synthetic annotations"}, "images": [')
        for start in range(0, num_images, chunk):
            records = [{"license": 1, "file_name": f"{i:012d}.jpg", "height": h, "width": w, "id": int(i)}
                       for i in ids[start : start + chunk]]
            out.write(("," if start else "") + json.dumps(records)[1:-1])
        out.write('], "annotations": [')
        for start in range(0, len(box_images), chunk):
            records = _annotation_records(rng, box_images[start : start + chunk], start + 1, polygon_points)
            out.write(("," if start else "") + json.dumps(records)[1:-1])
        categories = [{"supercategory": "object", "id": c, "name": n} for c, n in COCO_CATEGORIES]
        out.write('], "categories": ' + json.dumps(categories) + "}")
    return {"images": num_images, "annotations": int(len(box_images)), "bytes": path.stat().st_size}


def link_images(image_dir: Path, num_images: int, seed: int = 0) -> None:
    """``{id:012d}.jpg`` for ids 1..num_images as links to a few real 640x480 JPEGs (kept if present)."""
    image_dir.mkdir(parents=True, exist_ok=True)
    sources = image_dir.parent / f"{image_dir.name}-sources"
    sources.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = IMAGE_SIZE
    for k in range(DISTINCT_JPEGS):
        source = sources / f"{k}.jpg"
        if not source.is_file():
            image = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
            cv2.imwrite(str(source), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    existing = set(os.listdir(image_dir))
    for i in range(1, num_images + 1):
        name = f"{i:012d}.jpg"
        if name not in existing:
            os.symlink(sources / f"{i % DISTINCT_JPEGS}.jpg", image_dir / name)


def model_like_predictions(annotation_file: Path, per_image: int = 300, num_classes: int = 80,
                           seed: int = 0) -> tuple[list[int], list[dict[str, torch.Tensor]]]:
    """Per image of the file, ``per_image`` postprocessor-style detections (xyxy px float32, scores,
    contiguous labels): jittered copies of its boxes with high scores, the rest random with low ones."""
    doc = json.loads(annotation_file.read_text())
    category_to_label = {c: i for i, (c, _) in enumerate(COCO_CATEGORIES)}
    boxes_of: dict[int, list] = {img["id"]: [] for img in doc["images"]}
    for ann in doc["annotations"]:
        boxes_of[ann["image_id"]].append((ann["bbox"], category_to_label[ann["category_id"]]))
    rng = np.random.default_rng(seed)
    h, w = IMAGE_SIZE
    image_ids, predictions = sorted(boxes_of), []
    for image_id in image_ids:
        xy = rng.uniform(0, 1, (per_image, 2)) * [w - 8, h - 8]
        xyxy = np.column_stack([xy, xy + rng.uniform(4, 300, (per_image, 2))]).clip(0, [w, h, w, h])
        labels = rng.integers(0, num_classes, per_image)
        scores = rng.uniform(0.0, 0.5, per_image)
        for k, ((x, y, bw, bh), label) in enumerate(boxes_of[image_id][:per_image]):
            xyxy[k] = np.asarray([x, y, x + bw, y + bh]) + rng.normal(0, 4, 4)
            labels[k], scores[k] = label, rng.uniform(0.3, 1.0)
        predictions.append({"boxes": torch.from_numpy(xyxy.astype(np.float32)),
                            "scores": torch.from_numpy(scores.astype(np.float32)),
                            "labels": torch.from_numpy(labels.astype(np.int64))})
    return image_ids, predictions
