"""COCO-format detection dataset: cached flat annotation index, cv2 uint8 decode, contiguous labels, 16:9 canvas.

An item is addressed by an int (eval: default size, no augmentation) or by a tuple
(index, (H, W), heavy, seed[, dense]) coming from `MultiScaleBatchSampler` (train: per-batch size;
dense: mosaic / mixup of :mod:`neo.data.dense` for this sample, when the dataset has a DenseAugment).
Returns (image uint8 [3, H, W], target dict) with target keys "labels" int64 [N],
"boxes" float32 [N, 4] normalised cxcywh on the canvas, "image_id" int64 [], "orig_size" int64 [2]
(h, w), "letterbox" float32 [4] (scale_x, scale_y, pad_x, pad_y).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.ops import box_convert

from neo.data.annotation_index import AnnotationFileError, AnnotationIndex, load_annotation_index
from neo.data.dense import DenseAugment, Sample
from neo.data.sizes import check_16x9
from neo.data.transforms import DetectionTransform

log = logging.getLogger(__name__)


class DatasetError(AnnotationFileError):
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


class CocoDetection(Dataset):
    """Images + COCO JSON -> 16:9 canvases and contract targets.

    Category ids are mapped to contiguous labels in sorted id order; `label_to_category_id[label]`
    gives the id back. Crowd annotations are excluded; boxes are clipped to the image and those left
    with width or height < `min_box_size` px are dropped (the count is logged). Images without
    annotations stay as negatives. `on_bad_image`: "skip" (warn and serve the next image) or "error".
    `dense`: mosaic / mixup for the training items the sampler marks dense (None: never).
    """

    def __init__(
        self,
        image_dir: str | Path,
        annotation_file: str | Path,
        size: object = "640x360",
        transform: DetectionTransform | None = None,
        on_bad_image: str = "error",
        min_box_size: float = 1.0,
        dense: DenseAugment | None = None,
    ):
        self.image_dir = Path(image_dir)
        self.dense = dense
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
        try:
            index = load_annotation_index(self.annotation_file, min_box_size)
        except AnnotationFileError as exc:
            raise DatasetError(str(exc)) from None
        self.label_to_category_id: list[int] = list(index.label_to_category_id)
        self.class_names: list[str] = list(index.class_names)
        self.category_id_to_label = {cid: i for i, cid in enumerate(self.label_to_category_id)}
        self.index_file = index.path
        # Flat arrays, memory-mapped from the shared index file: every rank and DataLoader worker reads the
        # same pages instead of holding (and copy-on-read duplicating) per-image Python objects.
        rows = self._present_rows(index)
        self.ids = index.ids if rows is None else index.ids[rows]
        self._files = index.files if rows is None else index.files[rows]
        self._sizes = index.sizes if rows is None else index.sizes[rows]
        starts, ends = index.offsets[:-1], index.offsets[1:]
        self._starts = starts if rows is None else starts[rows]
        self._ends = ends if rows is None else ends[rows]
        self._boxes, self._labels = index.boxes, index.labels
        self.num_degenerate_dropped = index.num_degenerate_dropped
        if self.num_degenerate_dropped:
            log.warning("%s: dropped %d degenerate boxes (size < %s px after clipping to the image, or not finite)",
                        self.annotation_file.name, self.num_degenerate_dropped, min_box_size)

    def _present_rows(self, index: AnnotationIndex) -> np.ndarray | None:
        """Rows of the index whose image file exists (None: all of them). One folder listing instead of a
        stat per image (COCO train: ~1 s of stat calls); names not found in it are stat-ed (sub-folders)."""
        listed = set(os.listdir(self.image_dir))
        names = index.files.tolist()
        missing = [row for row, name in enumerate(names)
                   if name not in listed and not (self.image_dir / name).is_file()]
        if not missing:
            return None
        examples = ", ".join(names[row] for row in missing[:5])
        if self.on_bad_image == "error":
            raise CorruptImageError(
                f"{len(missing)} image file(s) listed in {self.annotation_file} are missing from {self.image_dir} "
                f"(e.g. {examples}). Fix the folder, or set data.on_bad_image=skip to leave them out."
            )
        log.warning("%s: leaving out %d image(s) whose files are missing (e.g. %s)", self.annotation_file.name,
                    len(missing), examples)
        if len(missing) == len(names):
            raise DatasetError(f"dataset is empty: no image listed in {self.annotation_file} exists in {self.image_dir}.")
        return np.setdiff1d(np.arange(len(names)), np.asarray(missing, dtype=np.int64))

    @property
    def num_classes(self) -> int:
        return len(self.label_to_category_id)

    @property
    def num_boxes(self) -> int:
        """Boxes kept for training/evaluation (crowd and degenerate ones excluded)."""
        return int((self._ends - self._starts).sum())

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> Path:
        return self.image_dir / str(self._files[index])

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes float32 [N, 4] xyxy px, clipped to the image; labels int64 [N]) of item `index`."""
        a, b = int(self._starts[index]), int(self._ends[index])
        return np.array(self._boxes[a:b]), np.array(self._labels[a:b])

    def __getitem__(self, key: int | tuple) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if isinstance(key, tuple):
            index, size, heavy, seed, *dense = key
        else:
            index, size, heavy, seed, dense = key, self.size, False, None, []
        i, image = self._read(index)
        if dense and dense[0] and self.dense is not None:
            return self._make_dense(i, image, tuple(size), seed)
        return self._make(i, image, tuple(size), heavy, seed)

    def _read(self, index: int) -> tuple[int, np.ndarray]:
        """(item, uint8 RGB [h, w, 3]) of the first readable item from ``index`` on (``on_bad_image=skip``
        moves on to the next one), checked against the size the annotation file gives it."""
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
            return i, image
        raise CorruptImageError(f"no readable image in {self.image_dir}")

    def _sample(self, index: int) -> Sample:
        """(image uint8 [h, w, 3], boxes float32 [N, 4] xyxy px, labels int64 [N]) of the readable item at
        or after ``index``: a mosaic tile or mixup partner."""
        i, image = self._read(index)
        return (image, *self.annotations(i))

    def _make(self, i: int, image: np.ndarray, size: tuple[int, int], heavy: bool, seed: int | None):
        boxes, labels = self.annotations(i)
        canvas, boxes, labels, params = self.transform(image, boxes, labels, size, heavy=heavy, seed=seed)
        return self._item(i, image, size, canvas, boxes, labels, params)

    def _make_dense(self, i: int, image: np.ndarray, size: tuple[int, int], seed: int):
        """Item ``i`` through DenseAugment (mosaic / mixup as its seed draws them) and the training transform."""
        canvas, boxes, labels, params = self.dense((image, *self.annotations(i)), self._sample, len(self.ids),
                                                   size, seed, self.transform)
        return self._item(i, image, size, canvas, boxes, labels, params)

    def _item(self, i: int, image: np.ndarray, size: tuple[int, int], canvas: np.ndarray, boxes: np.ndarray,
              labels: np.ndarray, params: np.ndarray) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The contract pair (image uint8 [3, H, W], target dict) of a transformed canvas."""
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
