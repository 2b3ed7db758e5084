"""Synthetic shapes images + targets for the model tests (no files, deterministic)."""

from __future__ import annotations

import numpy as np
import torch

COLORS = [(255, 60, 60), (60, 255, 60), (60, 60, 255)]


def make_shapes(n: int, h: int, w: int, seed: int = 0, max_objects: int = 3):
    """n uint8 images [n, 3, h, w] with 1..max_objects filled rectangles (class 0), ellipses (1) and
    triangles (2) on a dark noisy background, and their targets (normalised cxcywh)."""
    import cv2

    rng = np.random.default_rng(seed)
    images, targets = [], []
    for i in range(n):
        img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
        labels, boxes = [], []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            c = int(rng.integers(3))
            bw, bh = rng.uniform(0.12, 0.35) * w, rng.uniform(0.15, 0.45) * h
            x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            p0, p1 = (int(x0), int(y0)), (int(x0 + bw), int(y0 + bh))
            if c == 0:
                cv2.rectangle(img, p0, p1, COLORS[c], -1)
            elif c == 1:
                cv2.ellipse(
                    img,
                    ((p0[0] + p1[0]) // 2, (p0[1] + p1[1]) // 2),
                    (int(bw / 2), int(bh / 2)),
                    0,
                    0,
                    360,
                    COLORS[c],
                    -1,
                )
            else:
                pts = np.array([[(p0[0] + p1[0]) // 2, p0[1]], [p0[0], p1[1]], [p1[0], p1[1]]], np.int32)
                cv2.fillPoly(img, [pts], COLORS[c])
            labels.append(c)
            boxes.append([(x0 + bw / 2) / w, (y0 + bh / 2) / h, bw / w, bh / h])
        images.append(torch.from_numpy(img).permute(2, 0, 1))
        targets.append(
            {
                "labels": torch.tensor(labels, dtype=torch.int64),
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "image_id": torch.tensor(i),
                "orig_size": torch.tensor([h, w]),
                "letterbox": torch.tensor([1.0, 1.0, 0.0, 0.0]),
            }
        )
    return torch.stack(images), targets


def empty_targets(n: int, h: int, w: int) -> list[dict]:
    return [
        {
            "labels": torch.zeros(0, dtype=torch.int64),
            "boxes": torch.zeros(0, 4),
            "image_id": torch.tensor(i),
            "orig_size": torch.tensor([h, w]),
            "letterbox": torch.tensor([1.0, 1.0, 0.0, 0.0]),
        }
        for i in range(n)
    ]
