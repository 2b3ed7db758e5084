"""Fixtures for the data tests: a small hand-built COCO set with crowd, degenerate and negative images."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

# Sparse, non-1-based category ids on purpose: labels must come out contiguous 0..2.
CATEGORIES = [{"id": 3, "name": "cat3"}, {"id": 7, "name": "cat7"}, {"id": 12, "name": "cat12"}]


def write_coco(root: Path, images: list[dict], annotations: list[dict], categories=CATEGORIES,
               split: str = "train", write_images: bool = True) -> tuple[Path, Path]:
    """Write images (solid grey JPEGs of the listed sizes) and the JSON; returns (image_dir, json)."""
    image_dir, ann_dir = root / split, root / "annotations"
    image_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    if write_images:
        for img in images:
            cv2.imwrite(str(image_dir / img["file_name"]), np.full((img["height"], img["width"], 3), 90, np.uint8))
    ann_file = ann_dir / f"instances_{split}.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return image_dir, ann_file


@pytest.fixture
def small_coco(tmp_path: Path) -> tuple[Path, Path]:
    """4 images: 16:9 with 2 boxes + crowd + degenerate ones, a 4:3 one, a negative, one with a box out of bounds."""
    images = [
        {"id": 10, "file_name": "a.jpg", "width": 320, "height": 180},
        {"id": 11, "file_name": "b.jpg", "width": 200, "height": 150},
        {"id": 12, "file_name": "neg.jpg", "width": 320, "height": 180},
        {"id": 13, "file_name": "c.jpg", "width": 320, "height": 180},
    ]
    anns = [
        {"id": 1, "image_id": 10, "category_id": 3, "bbox": [32, 18, 64, 36], "area": 2304, "iscrowd": 0},
        {"id": 2, "image_id": 10, "category_id": 12, "bbox": [160, 90, 80, 45], "area": 3600, "iscrowd": 0},
        {"id": 3, "image_id": 10, "category_id": 7, "bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 1},
        {"id": 4, "image_id": 10, "category_id": 7, "bbox": [50, 50, 0, 10], "area": 0, "iscrowd": 0},
        {"id": 5, "image_id": 11, "category_id": 7, "bbox": [20, 30, 40, 60], "area": 2400, "iscrowd": 0},
        {"id": 6, "image_id": 13, "category_id": 7, "bbox": [300, 100, 50, 100], "area": 5000, "iscrowd": 0},
        {"id": 7, "image_id": 13, "category_id": 3, "bbox": [400, 10, 20, 20], "area": 400, "iscrowd": 0},
    ]
    return write_coco(tmp_path, images, anns)


@pytest.fixture
def coco_writer():
    """The `write_coco` helper, for tests that build their own (broken) datasets."""
    return write_coco
