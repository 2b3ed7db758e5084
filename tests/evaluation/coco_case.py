"""Hand-built COCO case with known AP: a crowd GT, category ids {1, 3, 7}, a false positive, a missed GT."""

from __future__ import annotations

import json
from pathlib import Path

import torch

# Contiguous labels 0, 1, 2 -> original category ids 1, 3, 7 (a gap, as in COCO).
LABEL_TO_CATEGORY_ID = [1, 3, 7]
CLASS_NAMES = ["car", "person", "dog"]


def annotations() -> dict:
    """Four 640x360 images. Boxes are COCO xywh; areas: 10000 is "large" (> 96^2), 400 "small"."""
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 360} for i in (1, 2, 3, 4)]
    gt = [
        # image 1: car A (detected), person B (small, detected), a crowd of cars C
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 100], "area": 10000, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [300, 50, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [400, 150, 200, 200], "area": 40000, "iscrowd": 1},
        # image 2: car D (missed), dog E (found with IoU 0.625)
        {"id": 4, "image_id": 2, "category_id": 1, "bbox": [50, 50, 100, 100], "area": 10000, "iscrowd": 0},
        {"id": 5, "image_id": 2, "category_id": 7, "bbox": [100, 100, 100, 100], "area": 10000, "iscrowd": 0},
        # image 3: no ground truth. image 4: car F, never passed to update()
        {"id": 6, "image_id": 4, "category_id": 1, "bbox": [20, 20, 100, 100], "area": 10000, "iscrowd": 0},
    ]
    categories = [{"id": c, "name": n} for c, n in zip(LABEL_TO_CATEGORY_ID, CLASS_NAMES, strict=True)]
    return {"images": images, "annotations": gt, "categories": categories}


def _prediction(rows: list[tuple[int, float, list[float]]]) -> dict[str, torch.Tensor]:
    return {
        "labels": torch.tensor([r[0] for r in rows], dtype=torch.int64),
        "scores": torch.tensor([r[1] for r in rows], dtype=torch.float32),
        "boxes": torch.tensor([r[2] for r in rows], dtype=torch.float32).reshape(-1, 4),
    }


def predictions() -> dict[int, dict[str, torch.Tensor]]:
    """Postprocessor outputs (labels contiguous, boxes xyxy original px) of images 1, 2, 3."""
    return {
        1: _prediction(
            [
                (0, 0.95, [450, 200, 500, 250]),  # car inside the crowd C: ignored, not a false positive
                (0, 0.90, [10, 10, 110, 110]),  # car A exactly
                (0, 0.70, [200, 200, 300, 300]),  # car false positive (large)
                (1, 0.60, [300, 50, 320, 70]),  # person B exactly
            ]
        ),
        2: _prediction([(2, 0.80, [100, 100, 200, 162.5])]),  # dog E at IoU 6250/10000 = 0.625
        3: _prediction([(1, 0.65, [10, 10, 30, 30])]),  # person false positive (small), above B's score
    }


# Hand-computed (101 recall points 0, .01, ..., 1; 10 IoU thresholds .50:.05:.95):
# car:    GT A, D (crowd C ignored); ranked dets: crowd-det (ignored), TP, FP -> recall 0.5 with precision 1
#         -> 51 of 101 recall points -> 51/101 at every IoU (exact box). (Were the crowd det an FP, 25.5/101.)
# person: ranked FP (0.65, image 3), TP (0.6) -> precision 0.5 up to recall 1 -> 0.5 at every IoU.
# dog:    IoU 0.625 matches at thresholds .50, .55, .60 only -> AP 1 at 3 of 10 thresholds -> 0.3.
CAR, PERSON, DOG = 51 / 101, 0.5, 0.3
EXPECTED_SEEN = {
    "AP": (CAR + PERSON + DOG) / 3,
    "AP50": (CAR + PERSON + 1.0) / 3,
    "AP75": (CAR + PERSON + 0.0) / 3,
    "APs": PERSON,  # only person B is small (and the FP on image 3 is small too)
    "APm": -1.0,  # no medium ground truth
    "APl": (CAR + DOG) / 2,  # person has no large GT -> undefined, left out of the mean
    # maxDets=1 per image and class keeps only the crowd det for car on image 1 -> car recall 0
    "AR1": (0.0 + 1.0 + 0.3) / 3,
    "AR10": (0.5 + 1.0 + 0.3) / 3,
    "AR100": (0.5 + 1.0 + 0.3) / 3,
    "ARs": 1.0,
    "ARm": -1.0,
    "ARl": (0.5 + 0.3) / 2,
    "AP/car": CAR,
    "AP/person": PERSON,
    "AP/dog": DOG,
}
# images="all" adds image 4 (car F, no detections): car recall 1/3 -> 34 of 101 recall points.
CAR_ALL = 34 / 101


def write_annotations(directory: Path) -> Path:
    path = Path(directory) / "instances_val.json"
    path.write_text(json.dumps(annotations()))
    return path
