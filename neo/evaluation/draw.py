"""Draw detections and ground truth on uint8 HWC RGB images with cv2, and grids of them for TensorBoard.

Predictions are drawn as solid boxes with "name score" tags, ground truth as dashed boxes with a
"name" tag; each class has one stable colour (``class_color``). Every function returns a new array and
leaves its input untouched.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torchvision.ops import box_convert

from neo.evaluation.arrays import as_numpy

FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(label: int) -> tuple[int, int, int]:
    """Stable, well-separated RGB colour of a contiguous label (golden-ratio hue steps)."""
    hue = (int(label) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _check_image(image: Any) -> np.ndarray:
    """uint8 [H, W, 3] numpy copy of an image (numpy HWC or torch CHW/HWC uint8)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
            image = image.permute(1, 2, 0)
        image = image.numpy()
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected a uint8 RGB image [H, W, 3] (or torch uint8 [3, H, W]); got dtype {image.dtype}, "
            f"shape {tuple(image.shape)}"
        )
    return np.ascontiguousarray(image).copy()


def _dashed_rectangle(
    image: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], color, thickness: int
) -> None:
    """cv2 has no dashed line type; draw each side as short segments."""
    (x1, y1), (x2, y2) = p1, p2
    dash = max(4, 3 * thickness)
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for start in range(0, length + 1, 2 * dash):
            end = min(start + dash, length)
            t0, t1 = start / max(length, 1), end / max(length, 1)
            s = (round(a[0] + (b[0] - a[0]) * t0), round(a[1] + (b[1] - a[1]) * t0))
            e = (round(a[0] + (b[0] - a[0]) * t1), round(a[1] + (b[1] - a[1]) * t1))
            cv2.line(image, s, e, color, thickness, cv2.LINE_AA)


def auto_style(height: int, width: int) -> tuple[int, float]:
    """(line thickness, font scale) readable at this image size: 2 / 0.5 up to 360p, 3 / 0.9 at 1080p."""
    short = min(height, width)
    return max(2, round(short / 360)), float(np.clip(short / 1200, 0.5, 1.6))


def _tag_size(text: str, scale: float) -> tuple[int, int]:
    """(width, height) in pixels of a filled tag holding ``text``."""
    (tw, th), baseline = cv2.getTextSize(text, FONT, scale, _text_thickness(scale))
    return tw + 4, th + baseline + 4


def _text_thickness(scale: float) -> int:
    return 1 if scale < 0.8 else 2


def _overlaps(rect: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    x1, y1, x2, y2 = rect
    return any(x1 < px2 and px1 < x2 and y1 < py2 and py1 < y2 for px1, py1, px2, py2 in placed)


def _place_tag(box: tuple[int, int, int, int], size: tuple[int, int], image_hw: tuple[int, int],
               placed: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """Top-left-anchored rectangle for a tag of ``size`` (w, h) near ``box`` that covers no placed tag.

    Tries above the box's top edge, just inside it, below the bottom edge, inside the bottom edge, then
    slides down along the box's left edge; falls back to the first spot inside the image.
    """
    x1, y1, x2, y2 = box
    w, h = size
    height, width = image_hw
    left = int(np.clip(x1, 0, max(0, width - w)))
    tops = [y1 - h, y1, y2, y2 - h]
    tops += list(range(y1 + h, max(y1 + h, y2 - h), h))
    candidates = []
    for top in tops:
        top = int(np.clip(top, 0, max(0, height - h)))
        rect = (left, top, left + w, top + h)
        candidates.append(rect)
        if not _overlaps(rect, placed):
            return rect
    return candidates[0]


def _tag(image: np.ndarray, text: str, rect: tuple[int, int, int, int], color: tuple[int, int, int],
         scale: float) -> None:
    """Filled label box with readable (black or white) text."""
    x1, y1, x2, y2 = rect
    cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), color, cv2.FILLED)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    (_, th), _ = cv2.getTextSize(text, FONT, scale, _text_thickness(scale))
    cv2.putText(image, text, (x1 + 2, y1 + th + 2), FONT, scale, ink, _text_thickness(scale), cv2.LINE_AA)


def draw_boxes(
    image: Any,
    boxes: Any,
    labels: Any,
    scores: Any | None = None,
    class_names: Sequence[str] | None = None,
    score_threshold: float = 0.0,
    dashed: bool = False,
    thickness: int | None = None,
    font_scale: float | None = None,
) -> np.ndarray:
    """Draw boxes with class-coloured outlines and "name score" tags that never cover one another.

    Args:
        image: uint8 [H, W, 3] RGB (or torch uint8 [3, H, W]); not modified.
        boxes: [K, 4] xyxy in this image's pixels.
        labels: [K] contiguous class labels (index class_names and class_color).
        scores: [K] or None (ground truth). Boxes with score < score_threshold are skipped.
        class_names: names per label; None writes the label number.
        dashed: dashed outlines (the ground-truth style).
        thickness, font_scale: None picks them from the image size (``auto_style``).
    Returns:
        uint8 [H, W, 3] RGB copy with the drawing. Boxes are drawn lowest score first (the most confident
        outline ends on top); tags are placed highest score first, each beside its box where it covers no
        earlier tag (above, inside, below, then further down the box's edge).
    """
    canvas = _check_image(image)
    boxes = as_numpy(boxes, np.float64).reshape(-1, 4)
    labels = as_numpy(labels, np.int64).reshape(-1)
    scores_np = None if scores is None else as_numpy(scores, np.float64).reshape(-1)
    if len(boxes) != len(labels) or (scores_np is not None and len(scores_np) != len(boxes)):
        raise ValueError(
            f"boxes ({len(boxes)}), labels ({len(labels)}) and scores must have the same length K"
        )
    auto_thickness, auto_scale = auto_style(*canvas.shape[:2])
    thickness = auto_thickness if thickness is None else thickness
    font_scale = auto_scale if font_scale is None else font_scale
    order = np.argsort(scores_np, kind="stable") if scores_np is not None else np.arange(len(boxes))
    shown = [int(i) for i in order if scores_np is None or scores_np[i] >= score_threshold]
    corners = {i: tuple(int(round(v)) for v in boxes[i]) for i in shown}
    for i in shown:  # lowest score first, so the most confident box ends on top
        x1, y1, x2, y2 = corners[i]
        color = class_color(int(labels[i]))
        if dashed:
            _dashed_rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        else:
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
    ranked = shown[::-1]  # the most confident box gets the best tag spot
    texts = []
    for i in ranked:
        label = int(labels[i])
        name = class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)
        texts.append(name if scores_np is None else f"{name} {scores_np[i]:.2f}")
    rects = place_tags([corners[i] for i in ranked], [_tag_size(t, font_scale) for t in texts], canvas.shape[:2])
    for i, text, rect in zip(ranked, texts, rects, strict=True):
        _tag(canvas, text, rect, class_color(int(labels[i])), font_scale)
    return canvas


def place_tags(boxes: Sequence[tuple[int, int, int, int]], sizes: Sequence[tuple[int, int]],
               image_hw: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Tag rectangles (x1, y1, x2, y2) for xyxy ``boxes`` in priority order, each clear of the earlier ones
    where the box leaves room (see ``_place_tag``); ``sizes`` are the tags' (width, height)."""
    placed: list[tuple[int, int, int, int]] = []
    for box, size in zip(boxes, sizes, strict=True):
        placed.append(_place_tag(box, size, image_hw, placed))
    return placed


def draw_prediction(image: Any, prediction: dict[str, Any], class_names=None, score_threshold: float = 0.3):
    """Draw one postprocessor output dict ("boxes" xyxy px of this image, "scores", "labels")."""
    return draw_boxes(
        image, prediction["boxes"], prediction["labels"], prediction["scores"], class_names, score_threshold
    )


def draw_ground_truth(image: Any, target: dict[str, Any], class_names=None) -> np.ndarray:
    """Draw ground truth ("boxes" xyxy px of this image, "labels") dashed, without scores."""
    return draw_boxes(image, target["boxes"], target["labels"], None, class_names, dashed=True)


def _caption(image: np.ndarray, text: str) -> None:
    """White text on a black strip in the bottom-left corner (box tags sit at the top)."""
    (tw, th), baseline = cv2.getTextSize(text, FONT, 0.5, 1)
    bottom = image.shape[0]
    cv2.rectangle(image, (0, bottom - th - baseline - 4), (tw + 6, bottom), (0, 0, 0), cv2.FILLED)
    cv2.putText(image, text, (3, bottom - baseline - 2), FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def _fit(image: np.ndarray, boxes: np.ndarray, max_width: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Downscale an image (and its xyxy boxes) to at most max_width pixels wide."""
    if max_width is None or image.shape[1] <= max_width:
        return image, boxes
    factor = max_width / image.shape[1]
    size = (max_width, max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), boxes * factor


def comparison_grid(
    images: Sequence[Any],
    predictions: Sequence[dict[str, Any]],
    ground_truths: Sequence[dict[str, Any]] | None = None,
    class_names: Sequence[str] | None = None,
    score_threshold: float = 0.3,
    max_width: int | None = 640,
    gap: int = 4,
) -> np.ndarray:
    """One row per image: predictions on the left, ground truth (dashed) on the right.

    Args:
        images: N uint8 [H, W, 3] (or torch [3, H, W]); sizes may differ, rows are padded to the widest.
        predictions: N dicts "boxes" [K, 4] xyxy in that image's pixels, "scores", "labels".
        ground_truths: N dicts "boxes" [G, 4] xyxy px, "labels"; None draws predictions only.
        max_width: each panel is downscaled to at most this width (None keeps full size).
    Returns:
        uint8 [H_grid, W_grid, 3] RGB (TensorBoard: ``add_image(tag, grid, step, dataformats="HWC")``).
    """
    if len(images) == 0 or len(images) != len(predictions):
        raise ValueError(f"need N >= 1 images and N predictions; got {len(images)} and {len(predictions)}")
    if ground_truths is not None and len(ground_truths) != len(images):
        raise ValueError(f"got {len(images)} images but {len(ground_truths)} ground truths")
    rows = []
    for i, image in enumerate(images):
        base = _check_image(image)
        pred = predictions[i]
        small, pred_boxes = _fit(base, as_numpy(pred["boxes"], np.float64).reshape(-1, 4), max_width)
        panel = draw_boxes(small, pred_boxes, pred["labels"], pred["scores"], class_names, score_threshold)
        _caption(panel, "prediction")
        panels = [panel]
        if ground_truths is not None:
            gt = ground_truths[i]
            _, gt_boxes = _fit(base, as_numpy(gt["boxes"], np.float64).reshape(-1, 4), max_width)
            gt_panel = draw_boxes(small, gt_boxes, gt["labels"], None, class_names, dashed=True)
            _caption(gt_panel, "ground truth")
            panels += [np.zeros((small.shape[0], gap, 3), np.uint8), gt_panel]
        rows.append(np.concatenate(panels, axis=1))
    width = max(row.shape[1] for row in rows)
    padded = []
    for row in rows:
        padded.append(np.pad(row, ((0, gap), (0, width - row.shape[1]), (0, 0))))
    return np.ascontiguousarray(np.concatenate(padded, axis=0)[:-gap])


def batch_comparison_grid(
    images: torch.Tensor,
    targets: Sequence[dict[str, torch.Tensor]],
    predictions: Sequence[dict[str, torch.Tensor]],
    class_names: Sequence[str] | None = None,
    max_images: int = 4,
    score_threshold: float = 0.3,
    max_width: int | None = 640,
) -> np.ndarray:
    """Grid of a validation batch as the model saw it (the 16:9 canvas), predictions vs ground truth.

    Args:
        images: uint8 [B, 3, H, W] batch canvas.
        targets: B dicts of the data batch format: "boxes" [N, 4] normalised cxcywh of the canvas (W, H),
            "labels" [N], "letterbox" [4] (scale_x, scale_y, pad_x, pad_y).
        predictions: B postprocessor dicts, boxes xyxy in ORIGINAL pixels; mapped onto the canvas with
            canvas = orig * scale + pad.
    Returns:
        uint8 [H_grid, W_grid, 3] RGB of the first min(B, max_images) images.
    """
    count = min(len(images), max_images)
    height, width = images.shape[-2:]
    scale_wh = torch.tensor([width, height, width, height], dtype=torch.float32)
    canvases, preds, gts = [], [], []
    for i in range(count):
        target, prediction = targets[i], predictions[i]
        canvases.append(images[i].detach().cpu().permute(1, 2, 0).numpy())
        gt_boxes = box_convert(target["boxes"].detach().cpu().float(), "cxcywh", "xyxy") * scale_wh
        gts.append({"boxes": gt_boxes, "labels": target["labels"]})
        sx, sy, px, py = target["letterbox"].detach().cpu().float().tolist()
        boxes = prediction["boxes"].detach().cpu().float() * torch.tensor([sx, sy, sx, sy])
        boxes = boxes + torch.tensor([px, py, px, py])
        preds.append({"boxes": boxes, "labels": prediction["labels"], "scores": prediction["scores"]})
    return comparison_grid(canvases, preds, gts, class_names, score_threshold, max_width)
