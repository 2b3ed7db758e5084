"""Dense one-to-one matching data (DEIM, CVPR 2025): mosaic and mixup give each training image more objects.

A DETR matches every ground truth to exactly one query, so an image with few objects trains few queries;
DEIM raises the number of targets per image instead of the number of matches per target. Two ways:

- mosaic: four images, each letterboxed into one quadrant of the training canvas (H, W) (so every tile
  keeps 16:9 when the images are 16:9), then one random affine of the whole canvas (rotation,
  translation, scale; DEIM: +-10 degrees, +-10 %, 0.5-1.5), boxes following their corners; when a sample
  is a mosaic, zoom-out and IoU crop are skipped for it (DEIM does the same), flip and photometric stay.
- mixup: the sample is blended with another training sample of the same canvas, ``beta * this +
  (1 - beta) * other`` with beta in [0.45, 0.55], and both sets of boxes are kept (DEIM blends
  neighbouring images of a batch; here each sample draws its partner, so the decision stays per sample
  and reproducible from its seed).

Both run only during the configured epochs (``data.dense.epochs``) and only while heavy augmentation is
on: the sampler (:class:`neo.data.sampler.MultiScaleBatchSampler`, ``dense_epochs``) marks the samples,
the dataset (:class:`neo.data.coco.CocoDetection`) calls :class:`DenseAugment` on them. Images stay uint8 [H, W, 3]; boxes
are xyxy pixels float32 [N, 4], clipped to the canvas, boxes thinner than ``min_box_size`` dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from neo.data.transforms import DetectionTransform, letterbox

# (image uint8 [h, w, 3], boxes float32 [N, 4] xyxy px, labels int64 [N]) of one dataset item
Sample = tuple[np.ndarray, np.ndarray, np.ndarray]
# (canvas uint8 [H, W, 3], boxes float32 [N, 4] xyxy canvas px, labels int64 [N], letterbox float32 [4])
Canvas = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

NO_LETTERBOX = np.array([1.0, 1.0, 0.0, 0.0], dtype=np.float32)  # a mosaic canvas maps to no single original


def mosaic_tiles(samples: Sequence[Sample], size: tuple[int, int], fill: int = 0) -> Sample:
    """Letterbox four samples into the quadrants of one (H, W) canvas: top-left, top-right, bottom-left,
    bottom-right (an odd H or W gives the lower/right quadrants the extra pixel).

    Returns (canvas uint8 [H, W, 3], boxes float32 [N1+..+N4, 4] xyxy canvas px, labels int64 [N1+..+N4]),
    boxes in the order of the samples.
    """
    if len(samples) != 4:
        raise ValueError(f"a mosaic takes 4 images, got {len(samples)}")
    height, width = size
    top, left = height // 2, width // 2
    canvas = np.full((height, width, 3), fill, dtype=np.uint8)
    boxes, labels = [], []
    cells = [(0, 0, top, left), (0, left, top, width - left), (top, 0, height - top, left),
             (top, left, height - top, width - left)]
    for (image, box, label), (y0, x0, h, w) in zip(samples, cells, strict=True):
        tile, tile_boxes, _ = letterbox(image, box, (h, w), fill)
        canvas[y0 : y0 + h, x0 : x0 + w] = tile
        boxes.append(tile_boxes + np.array([x0, y0, x0, y0], dtype=np.float32))
        labels.append(np.asarray(label, dtype=np.int64).reshape(-1))
    return canvas, np.concatenate(boxes).reshape(-1, 4), np.concatenate(labels)


def blend(first: Canvas, second: Canvas, beta: float) -> Canvas:
    """Mixup of two canvases of one size: ``beta * first + (1 - beta) * second`` (uint8, rounded), the boxes
    and labels of both (first's, then second's); the letterbox of the first."""
    image = cv2.addWeighted(first[0], beta, second[0], 1.0 - beta, 0.0)
    return (image, np.concatenate([first[1], second[1]]).reshape(-1, 4),
            np.concatenate([first[2], second[2]]), first[3])


@dataclass(frozen=True)
class DensePlan:
    """What one training sample becomes: drawn by :meth:`DenseAugment.plan` from the sample's seed."""

    mosaic: bool
    partners: tuple[int, ...]  # the 3 other dataset indices of the mosaic (empty without one)
    mixup: int | None  # dataset index of the mixup partner, or None
    beta: float  # weight of this sample in the mixup
    seed: int  # for the affine, flip and photometric draws of this sample
    partner_seed: int  # for the mixup partner's own plan


class DenseAugment:
    """Mosaic and mixup for dense one-to-one matching; callable on one training sample.

    Args:
        mosaic_prob: chance that a sample is a mosaic of itself and three random others (DEIM 0.5).
        mixup_prob: chance that a sample is blended with another sample (DEIM 0.5).
        rotate: largest rotation of the mosaic canvas, degrees (DEIM 10).
        translate: largest shift of the mosaic canvas, fraction of its width/height (DEIM 0.1).
        scale: (low, high) zoom of the mosaic canvas (DEIM 0.5, 1.5).
        fill: grey level of the canvas outside the images.
        min_box_size: boxes thinner than this (px) after the affine are dropped.
    """

    def __init__(
        self,
        mosaic_prob: float = 0.5,
        mixup_prob: float = 0.5,
        rotate: float = 10.0,
        translate: float = 0.1,
        scale: Sequence[float] = (0.5, 1.5),
        fill: int = 0,
        min_box_size: float = 1.0,
    ):
        self.mosaic_prob, self.mixup_prob = float(mosaic_prob), float(mixup_prob)
        self.fill, self.min_box_size = fill, min_box_size
        bbox = A.BboxParams(format="pascal_voc", label_fields=["labels"], min_width=min_box_size,
                            min_height=min_box_size, clip=True)
        # one zoom for both axes (keep_ratio), corners of each box -> their enclosing box (largest_box)
        self.affine = A.Compose([A.Affine(scale=tuple(scale), translate_percent=(-translate, translate),
                                          rotate=(-rotate, rotate), keep_ratio=True, rotate_method="largest_box",
                                          border_mode=cv2.BORDER_CONSTANT, fill=fill, p=1.0)], bbox_params=bbox)

    def plan(self, seed: int, num_images: int) -> DensePlan:
        """The draws of one sample of a dataset of ``num_images`` from its ``seed``: a pure function."""
        rng = np.random.default_rng([seed, 0x44454E53])
        mosaic = bool(rng.random() < self.mosaic_prob)
        partners = tuple(int(i) for i in rng.integers(num_images, size=3)) if mosaic else ()
        mixup = int(rng.integers(num_images)) if rng.random() < self.mixup_prob else None
        beta = float(rng.uniform(0.45, 0.55))
        own, other = (int(s) for s in rng.integers(2**62, size=2))
        return DensePlan(mosaic, partners, mixup, beta, own, other)

    def mosaic(self, samples: Sequence[Sample], size: tuple[int, int], seed: int) -> Sample:
        """Four samples -> one (H, W) canvas after the random affine: (canvas, boxes [N, 4] xyxy px, labels [N]).

        N <= the sum of the four counts: boxes pushed out of the canvas or thinner than min_box_size go.
        """
        canvas, boxes, labels = mosaic_tiles(samples, size, self.fill)
        self.affine.set_random_seed(seed)
        out = self.affine(image=canvas, bboxes=boxes, labels=labels)
        return (out["image"], np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4),
                np.asarray(out["labels"], dtype=np.int64).reshape(-1))

    def __call__(
        self,
        sample: Sample,
        load: Callable[[int], Sample],
        num_images: int,
        size: tuple[int, int],
        seed: int,
        transform: DetectionTransform,
    ) -> Canvas:
        """One dataset item (already read: ``sample``) -> (canvas [H, W, 3], boxes, labels, letterbox).

        ``load(i)`` reads dataset item i; ``transform`` is the training transform (flip, photometric, the
        letterbox to ``size``; zoom-out and IoU crop too when the sample is no mosaic).
        """
        plan = self.plan(seed, num_images)
        first = self._single(sample, plan, load, size, transform)
        if plan.mixup is None:
            return first
        partner = self.plan(plan.partner_seed, num_images)
        second = self._single(load(plan.mixup), partner, load, size, transform)
        return blend(first, second, plan.beta)

    def _single(self, sample: Sample, plan: DensePlan, load: Callable[[int], Sample], size: tuple[int, int],
                transform: DetectionTransform) -> Canvas:
        """One sample through mosaic (when planned) and the training transform."""
        if not plan.mosaic:
            return transform(*sample, size, heavy=True, seed=plan.seed)
        canvas, boxes, labels = self.mosaic([sample, *(load(i) for i in plan.partners)], size, plan.seed)
        canvas, boxes, labels, _ = transform(canvas, boxes, labels, size, heavy=True, crop=False, seed=plan.seed + 1)
        return canvas, boxes, labels, NO_LETTERBOX
