"""Synthetic 16:9 COCO dataset: coloured shapes on textured backgrounds, deterministic for a seed.

Layout written under `root` (what conf/data/synthetic.yaml reads):
  train/NNNNNN.jpg, val/NNNNNN.jpg, annotations/instances_train.json, annotations/instances_val.json
Objects are large and distinct (a tiny RT-DETR learns them in minutes on a CPU); some overlap, so
later shapes occlude earlier ones; a few images are negatives (no objects).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from neo.data.sizes import check_16x9
from neo.files import write_text_atomic

SHAPES = ("circle", "rectangle", "triangle", "cross", "star", "hexagon", "ring")


def _polygon(kind: str, cx: float, cy: float, r: float, rng: np.random.Generator) -> np.ndarray:
    """Vertices [K, 2] (x, y) of a shape of radius ~r centred on (cx, cy), randomly rotated."""
    rot = rng.uniform(0, 2 * math.pi)
    if kind == "triangle":
        ang, rad = np.arange(3) * 2 * math.pi / 3 + rot, np.full(3, r)
    elif kind == "hexagon":
        ang, rad = np.arange(6) * math.pi / 3 + rot, np.full(6, r)
    elif kind == "star":
        ang, rad = np.arange(10) * math.pi / 5 + rot, np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    elif kind == "cross":
        t = 0.33 * r
        pts = np.array([(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t), (t, r), (-t, r), (-t, t), (-r, t), (-r, -t), (-t, -t)])
        rot = rng.uniform(-0.3, 0.3)
        c, s = math.cos(rot), math.sin(rot)
        return (pts @ np.array([[c, s], [-s, c]]) + (cx, cy)).astype(np.float64)
    else:  # rectangle: axis-aligned, varied aspect
        a = rng.uniform(0.45, 1.0)
        w, h = (r, r * a) if rng.random() < 0.5 else (r * a, r)
        return np.array([(cx - w, cy - h), (cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h)])
    return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1)


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Muted textured background uint8 [h, w, 3]: smooth colour field + grain + a few lines."""
    coarse = rng.uniform(60, 190, size=(rng.integers(3, 10), rng.integers(4, 16), 3)).astype(np.float32)
    grey = coarse.mean(axis=2, keepdims=True)
    coarse = grey + 0.4 * (coarse - grey)  # desaturate so saturated shapes stand out
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 8, size=(h, w, 1)).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(2, 8)):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        col = tuple(int(v) for v in rng.integers(40, 220, 3))
        cv2.line(img, p0, p1, col, int(rng.integers(1, 4)), cv2.LINE_AA)
    return img


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(170, 256), rng.integers(150, 256)]]], dtype=np.uint8)
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def render_image(h: int, w: int, classes: tuple[str, ...], rng: np.random.Generator, max_objects: int,
                 size_range: tuple[float, float], negative: bool) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """One RGB image [h, w, 3] and its objects [(label, [x, y, bw, bh])] in drawing order."""
    img = _background(h, w, rng)
    objects: list[tuple[int, list[float]]] = []
    boxes: list[np.ndarray] = []
    n = 0 if negative else int(rng.integers(1, max_objects + 1))
    for _ in range(n * 4):  # placement attempts
        if len(objects) == n:
            break
        label = int(rng.integers(len(classes)))
        r = rng.uniform(*size_range) * h / 2
        cx, cy = rng.uniform(0.6 * r, w - 0.6 * r), rng.uniform(0.6 * r, h - 0.6 * r)
        if classes[label] in ("circle", "ring"):
            x0, y0, x1, y1 = cx - r, cy - r, cx + r, cy + r
        else:
            pts = _polygon(classes[label], cx, cy, r, rng)
            (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        box = np.array([max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)])
        if box[2] - box[0] < 8 or box[3] - box[1] < 8 or any(_box_iou(box, b) > 0.3 for b in boxes):
            continue  # keep occlusion partial: at most 30% IoU with an earlier shape
        col = _colour(rng)
        if classes[label] == "circle":
            cv2.circle(img, (round(cx * 16), round(cy * 16)), round(r * 16), col, -1, cv2.LINE_AA, shift=4)
        elif classes[label] == "ring":
            cv2.circle(img, (round(cx * 16), round(cy * 16)), round(r * 0.8 * 16), col, max(2, round(r * 0.35)), cv2.LINE_AA, shift=4)
        else:
            cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], col, cv2.LINE_AA, shift=4)
        boxes.append(box)
        objects.append((label, [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]))
    return img, objects


def generate_synthetic_coco(
    root: str | Path,
    num_train: int = 400,
    num_val: int = 80,
    size: object = "640x360",
    num_classes: int = 5,
    seed: int = 0,
    max_objects: int = 5,
    size_range: tuple[float, float] = (0.18, 0.45),
    negative_fraction: float = 0.03,
    jpeg_quality: int = 92,
) -> dict[str, Path]:
    """Write the dataset under `root`; same arguments -> byte-identical files. Returns the JSON paths.

    size: 16:9 image size; size_range: shape diameter as a fraction of the image height.
    """
    h, w = check_16x9(size, key="synth size")
    if not 1 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes={num_classes}: choose 1..{len(SHAPES)} ({', '.join(SHAPES)}).")
    classes = SHAPES[:num_classes]
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    docs: dict[str, dict] = {}
    for split_index, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        (root / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            rng = np.random.default_rng([seed, split_index, i])
            negative = rng.random() < negative_fraction
            img, objects = render_image(h, w, classes, rng, max_objects, size_range, negative)
            name = f"{i + 1:06d}.jpg"
            cv2.imwrite(str(root / split / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
            for label, bbox in objects:
                annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": label + 1,
                                    "bbox": [round(v, 2) for v in bbox], "area": round(bbox[2] * bbox[3], 2), "iscrowd": 0})
        doc = {"info": {"description": f"neo synthetic shapes, seed {seed}"}, "images": images,
               "annotations": annotations,
               "categories": [{"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(classes)]}
        docs[split] = doc
    # JSON last, train last of all: an existing train JSON means the whole dataset is complete.
    for split in ("val", "train"):
        out[split] = root / "annotations" / f"instances_{split}.json"
        write_text_atomic(out[split], json.dumps(docs[split]))
    return {"train": out["train"], "val": out["val"]}
