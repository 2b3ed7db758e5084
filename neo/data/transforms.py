"""16:9 detection transforms on uint8 images: augment (albumentations) then letterbox to a canvas.

Train: [zoom-out, IoU crop] (heavy, switchable off), horizontal flip, letterbox to the batch size,
photometric distortion (heavy; pixel-wise, so applied before or after the resize, whichever
has fewer pixels). Eval: letterbox only,
with exactly the same letterbox geometry as training.
Boxes are xyxy pixels [N, 4] float32 on input and on output (output in canvas pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from neo.data.augment import PhotometricDistort, RandomIoUCrop, ZoomOut


@dataclass(frozen=True)
class LetterboxGeometry:
    """Where an (h, w) image lands in an (H, W) canvas: canvas_px = orig_px * scale + pad."""

    new_h: int
    new_w: int
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    def as_array(self) -> np.ndarray:
        """float32 [4] = (scale_x, scale_y, pad_x, pad_y), the contract's `letterbox` target."""
        return np.array([self.scale_x, self.scale_y, self.pad_x, self.pad_y], dtype=np.float32)


def letterbox_geometry(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> LetterboxGeometry:
    """Largest aspect-preserving fit of src (h, w) into dst (H, W), centred; scales are exact per axis."""
    h, w = src_hw
    dst_h, dst_w = dst_hw
    s = min(dst_h / h, dst_w / w)
    new_h, new_w = min(dst_h, max(1, round(h * s))), min(dst_w, max(1, round(w * s)))
    return LetterboxGeometry(new_h, new_w, new_w / w, new_h / h, (dst_w - new_w) // 2, (dst_h - new_h) // 2)


def letterbox(
    image: np.ndarray, boxes: np.ndarray, size: tuple[int, int], fill: int = 0,
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize + centre-pad image [h, w, 3] uint8 into size (H, W); boxes [N, 4] xyxy px follow.

    Returns (canvas [H, W, 3] uint8, boxes [N, 4] float32 canvas px, letterbox float32 [4]).
    Hand-written around cv2.resize/copyMakeBorder because albumentations' LongestMaxSize +
    PadIfNeeded do not report the scale/offset the contract needs to map predictions back exactly.
    """
    g = letterbox_geometry(image.shape[:2], size)
    if (g.new_h, g.new_w) != image.shape[:2]:
        image = cv2.resize(image, (g.new_w, g.new_h), interpolation=interpolation)
    right, bottom = size[1] - g.new_w - g.pad_x, size[0] - g.new_h - g.pad_y
    if g.pad_x or g.pad_y or right or bottom:
        image = cv2.copyMakeBorder(image, g.pad_y, bottom, g.pad_x, right, cv2.BORDER_CONSTANT, value=(fill,) * 3)
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = out[:, [0, 2]] * g.scale_x + g.pad_x
    out[:, [1, 3]] = out[:, [1, 3]] * g.scale_y + g.pad_y
    return image, out, g.as_array()


def unletterbox_boxes(boxes: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Map xyxy canvas px [N, 4] back to original px with letterbox [4] = (sx, sy, px, py)."""
    sx, sy, px, py = (float(v) for v in params)
    out = np.asarray(boxes, dtype=np.float64).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - px) / sx
    out[:, [1, 3]] = (out[:, [1, 3]] - py) / sy
    return out


class DetectionTransform:
    """Callable (image, boxes, labels, size, heavy, seed, crop) -> (canvas, boxes, labels, letterbox).

    image: uint8 [h, w, 3] RGB; boxes: float32 [N, 4] xyxy px (valid, inside the image);
    labels: int64 [N]; size: canvas (H, W), 16:9; heavy: enable zoom-out / IoU crop / photometric;
    crop: with heavy, False leaves zoom-out and IoU crop out (a mosaic: neo.data.dense);
    seed: per-sample seed so augmentation is reproducible and independent of the worker layout.
    Output boxes are clipped to the canvas; boxes thinner than `min_box_size` px are dropped.
    The returned letterbox [4] describes the final resize + pad of the (augmented) image: for eval
    (and heavy=False without a flip) it maps canvas pixels back to original pixels exactly.
    """

    def __init__(
        self,
        train: bool = False,
        hflip_p: float = 0.5,
        photometric_p: float = 0.5,
        zoom_out_p: float = 0.5,
        zoom_out_max: float = 4.0,
        iou_crop_p: float = 0.8,
        fill: int = 0,
        min_box_size: float = 1.0,
    ):
        self.train, self.fill, self.min_box_size = train, fill, min_box_size
        bbox = A.BboxParams(format="pascal_voc", label_fields=["labels"], min_width=min_box_size,
                            min_height=min_box_size, clip=True)
        flip = [A.HorizontalFlip(p=hflip_p)] if hflip_p > 0 else []
        heavy = [ZoomOut(zoom_out_max, fill, p=zoom_out_p)] if zoom_out_p > 0 else []
        heavy += [RandomIoUCrop(p=iou_crop_p)] if iou_crop_p > 0 else []
        self.heavy_geometry = A.Compose(heavy + flip, bbox_params=bbox)
        self.light_geometry = A.Compose(flip, bbox_params=bbox)
        # Each of brightness/contrast/saturation/hue with probability photometric_p (official: 0.5).
        self.photometric = A.Compose([PhotometricDistort(p_each=photometric_p)])

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, size: tuple[int, int],
        heavy: bool = True, seed: int | None = None, crop: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if self.train:
            geometry = self.heavy_geometry if heavy and crop else self.light_geometry
            if geometry.transforms:
                geometry.set_random_seed(seed)
                out = geometry(image=image, bboxes=boxes, labels=labels)
                image = out["image"]
                boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
                labels = np.asarray(out["labels"], dtype=np.int64).reshape(-1)
        photometric = self.train and heavy and self.photometric.transforms[0].p_each > 0
        if photometric:  # pixel-wise, so apply it where there are fewer pixels: before or after resize
            self.photometric.set_random_seed(None if seed is None else seed + 1)
            before = image.shape[0] * image.shape[1] < size[0] * size[1]
            if before:
                image = self.photometric(image=image)["image"]
        canvas, boxes, params = letterbox(image, boxes, size, self.fill)
        if photometric and not before:
            canvas = self.photometric(image=canvas)["image"]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, size[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, size[0])
        keep = ((boxes[:, 2] - boxes[:, 0]) >= self.min_box_size) & ((boxes[:, 3] - boxes[:, 1]) >= self.min_box_size)
        return np.ascontiguousarray(canvas), boxes[keep], labels[keep], params
