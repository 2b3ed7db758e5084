"""COCO-format detection dataset: pycocotools index, cv2 uint8 decode, contiguous labels, 16:9 canvas.

An item is addressed by an int (eval: default size, no augmentation) or by a tuple
(index, (H, W), heavy, seed) coming from `MultiScaleBatchSampler` (train: per-batch size).
Returns (image uint8 [3, H, W], target dict) with target keys "labels" int64 [N],
"boxes" float32 [N, 4] normalised cxcywh on the canvas, "image_id" int64 [], "orig_size" int64 [2]
(h, w), "letterbox" float32 [4] (scale_x, scale_y, pad_x, pad_y).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset
from torchvision.ops import box_convert

from neo.data.sizes import check_16x9
from neo.data.transforms import DetectionTransform

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """The dataset on disk cannot be used as configured (malformed JSON, no usable annotations, an unreadable
    image under ``on_bad_image=error`` ...); the message names the file and the fix."""


class CorruptImageError(DatasetError, RuntimeError):
    """An image file is missing or cannot be decoded."""


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to uint8 RGB [h, w, 3]; raise CorruptImageError naming the file."""
    if not path.is_file():
        raise CorruptImageError(f"image file missing: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)
    if image is None:
        raise CorruptImageError(f"image file cannot be decoded (corrupt or not an image): {path}")
    return image


def load_coco(annotation_file: Path) -> COCO:
    """pycocotools index of a COCO JSON file; ValueError naming the file (and where it breaks) if malformed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            return COCO(str(annotation_file))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"annotation file {annotation_file} is not valid JSON ({exc.msg}: line {exc.lineno}, column {exc.colno}): "
            f"it may be truncated. Fix: re-export or re-download it; `neo-data verify <dataset dir>` checks a dataset."
        ) from None
    except (AssertionError, KeyError, TypeError, AttributeError) as exc:  # wrong shape: a list, a bad record
        raise DatasetError(
            f"annotation file {annotation_file} is not a COCO detection file ({type(exc).__name__}: {exc}): it needs "
            f"an object with 'images', 'annotations' and 'categories' lists. Fix: convert it to COCO format; "
            f"`neo-data verify <dataset dir>` checks a dataset."
        ) from None


class CocoDetection(Dataset):
    """Images + COCO JSON -> 16:9 canvases and contract targets.

    Category ids are mapped to contiguous labels in sorted id order; `label_to_category_id[label]`
    gives the id back. Crowd annotations are excluded; boxes are clipped to the image and those left
    with width or height < `min_box_size` px are dropped (the count is logged). Images without
    annotations stay as negatives. `on_bad_image`: "skip" (warn and serve the next image) or "error".
    """

    def __init__(
        self,
        image_dir: str | Path,
        annotation_file: str | Path,
        size: object = "640x360",
        transform: DetectionTransform | None = None,
        on_bad_image: str = "error",
        min_box_size: float = 1.0,
    ):
        self.image_dir = Path(image_dir)
        self.annotation_file = Path(annotation_file)
        if on_bad_image not in ("skip", "error"):
            raise ValueError(f"on_bad_image={on_bad_image!r}: use 'skip' (warn and skip) or 'error'.")
        if not self.annotation_file.is_file():
            raise FileNotFoundError(
                f"annotation file not found: {self.annotation_file}. Generate a dataset with "
                f"`neo-data synth DIR`, download COCO with `neo-data download coco`, or fix the path."
            )
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.image_dir} (for {self.annotation_file}).")
        self.size = check_16x9(size, key="size")
        self.transform = transform or DetectionTransform(train=False)
        self.on_bad_image = on_bad_image
        self.min_box_size = min_box_size
        coco = load_coco(self.annotation_file)
        cats = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
        self.label_to_category_id: list[int] = [c["id"] for c in cats]
        self.class_names: list[str] = [c["name"] for c in cats]
        self.category_id_to_label = {cid: i for i, cid in enumerate(self.label_to_category_id)}
        ids = sorted(coco.imgs)
        if not ids:
            raise DatasetError(f"dataset is empty: {self.annotation_file} lists no images.")
        unsized = [i for i in ids if not all(isinstance(coco.imgs[i].get(k), int) and coco.imgs[i][k] > 0
                                             for k in ("width", "height"))]
        if unsized:
            raise DatasetError(
                f"{self.annotation_file}: {len(unsized)} image record(s) lack a positive integer width/height "
                f"(e.g. id {unsized[0]}: {coco.imgs[unsized[0]]}). Fix the JSON or run `neo-data verify`."
            )
        ids = self._drop_missing(coco, ids)
        targets = [self._load_target(coco, i) for i in ids]
        # Flat numpy arrays instead of per-image Python objects: DataLoader workers share these pages
        # instead of copying them on access (the refcount copy-on-read that grows host RAM).
        self.ids = np.asarray(ids, dtype=np.int64)
        self._files = np.asarray([coco.imgs[i]["file_name"] for i in ids], dtype=np.str_)
        self._sizes = np.asarray([(coco.imgs[i]["height"], coco.imgs[i]["width"]) for i in ids], dtype=np.int64)
        self._boxes = np.concatenate([t[0] for t in targets]).astype(np.float32).reshape(-1, 4)
        self._labels = np.concatenate([t[1] for t in targets]).astype(np.int64)
        self._offsets = np.cumsum([0] + [len(t[1]) for t in targets]).astype(np.int64)
        self.num_degenerate_dropped = sum(t[2] for t in targets)
        if self.num_degenerate_dropped:
            log.warning("%s: dropped %d degenerate boxes (size < %s px after clipping to the image, or not finite)",
                        self.annotation_file.name, self.num_degenerate_dropped, min_box_size)

    def _drop_missing(self, coco: COCO, ids: list[int]) -> list[int]:
        """Check every listed file exists (a stat each, ~1 s for COCO train): error or drop with a warning."""
        missing = [i for i in ids if not (self.image_dir / coco.imgs[i]["file_name"]).is_file()]
        if not missing:
            return ids
        names = ", ".join(coco.imgs[i]["file_name"] for i in missing[:5])
        if self.on_bad_image == "error":
            raise CorruptImageError(
                f"{len(missing)} image file(s) listed in {self.annotation_file} are missing from {self.image_dir} "
                f"(e.g. {names}). Fix the folder, or set data.on_bad_image=skip to leave them out."
            )
        log.warning("%s: leaving out %d image(s) whose files are missing (e.g. %s)", self.annotation_file.name,
                    len(missing), names)
        gone = set(missing)
        kept = [i for i in ids if i not in gone]
        if not kept:
            raise DatasetError(f"dataset is empty: no image listed in {self.annotation_file} exists in {self.image_dir}.")
        return kept

    @property
    def num_classes(self) -> int:
        return len(self.label_to_category_id)

    @property
    def num_boxes(self) -> int:
        """Boxes kept for training/evaluation (crowd and degenerate ones excluded)."""
        return len(self._labels)

    def __len__(self) -> int:
        return len(self.ids)

    def _load_target(self, coco: COCO, image_id: int) -> tuple[np.ndarray, np.ndarray, int]:
        """-> (boxes float32 [N, 4] xyxy px clipped, labels int64 [N], number dropped)."""
        info = coco.imgs[image_id]
        w, h = info["width"], info["height"]
        boxes, labels, dropped = [], [], 0
        for ann in coco.imgToAnns.get(image_id, []):
            if ann.get("iscrowd", 0):
                continue
            if ann["category_id"] not in self.category_id_to_label:
                raise DatasetError(
                    f"{self.annotation_file}: annotation id {ann.get('id')} on image {image_id} uses "
                    f"category_id {ann['category_id']}, which is not in 'categories' "
                    f"({self.label_to_category_id}). Fix the JSON or run `neo-data verify`."
                )
            try:
                x, y, bw, bh = (float(v) for v in ann["bbox"])
            except (KeyError, TypeError, ValueError):
                raise DatasetError(
                    f"{self.annotation_file}: annotation id {ann.get('id')} on image {image_id} has bbox "
                    f"{ann.get('bbox')!r}; COCO boxes are [x, y, width, height] in pixels. Fix the JSON or run "
                    f"`neo-data verify`."
                ) from None
            if not all(math.isfinite(v) for v in (x, y, bw, bh)):
                dropped += 1
                continue
            x0, y0 = min(max(x, 0.0), w), min(max(y, 0.0), h)
            x1, y1 = min(max(x + bw, 0.0), w), min(max(y + bh, 0.0), h)
            if x1 - x0 < self.min_box_size or y1 - y0 < self.min_box_size:
                dropped += 1
                continue
            boxes.append((x0, y0, x1, y1))
            labels.append(self.category_id_to_label[ann["category_id"]])
        return (np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64), dropped)

    def image_path(self, index: int) -> Path:
        return self.image_dir / str(self._files[index])

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes float32 [N, 4] xyxy px, clipped to the image; labels int64 [N]) of item `index`."""
        a, b = self._offsets[index], self._offsets[index + 1]
        return self._boxes[a:b], self._labels[a:b]

    def __getitem__(self, key: int | tuple) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if isinstance(key, tuple):
            index, size, heavy, seed = key
        else:
            index, size, heavy, seed = key, self.size, False, None
        for attempt in range(len(self.ids)):
            i = (index + attempt) % len(self.ids)
            try:
                image = read_image(self.image_path(i))
                if tuple(image.shape[:2]) != tuple(self._sizes[i]):
                    raise CorruptImageError(
                        f"image file is {image.shape[0]}x{image.shape[1]} (h x w) but {self.annotation_file.name} "
                        f"says {self._sizes[i][0]}x{self._sizes[i][1]}, so its boxes would be misplaced: "
                        f"{self.image_path(i)}")
            except CorruptImageError as err:
                if self.on_bad_image == "error":
                    raise CorruptImageError(f"{err} (set data.on_bad_image=skip to skip such images)") from None
                log.warning("skipping: %s", err)
                continue
            return self._make(i, image, tuple(size), heavy, seed)
        raise CorruptImageError(f"no readable image in {self.image_dir}")

    def _make(self, i: int, image: np.ndarray, size: tuple[int, int], heavy: bool, seed: int | None):
        boxes, labels = self.annotations(i)
        canvas, boxes, labels, params = self.transform(image, boxes, labels, size, heavy=heavy, seed=seed)
        h, w = size
        boxes_t = box_convert(torch.from_numpy(boxes), "xyxy", "cxcywh") / torch.tensor([w, h, w, h], dtype=torch.float32)
        target = {
            "labels": torch.from_numpy(labels),
            "boxes": boxes_t.float(),
            "image_id": torch.tensor(int(self.ids[i]), dtype=torch.int64),
            "orig_size": torch.tensor(image.shape[:2], dtype=torch.int64),
            "letterbox": torch.from_numpy(params),
        }
        return torch.from_numpy(canvas).permute(2, 0, 1), target
