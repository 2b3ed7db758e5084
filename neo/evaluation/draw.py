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

FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(label: int) -> tuple[int, int, int]:
    """Stable, well-separated RGB colour of a contiguous label (golden-ratio hue steps)."""
    hue = (int(label) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _numpy(value: Any, dtype: type) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


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


def _tag(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float) -> None:
    """Filled label box with readable (black or white) text, above (x, y) or inside if at the top edge."""
    (tw, th), baseline = cv2.getTextSize(text, FONT, scale, 1)
    top = y - th - baseline - 2 if y - th - baseline - 2 >= 0 else y
    cv2.rectangle(image, (x, top), (x + tw + 2, top + th + baseline + 2), color, cv2.FILLED)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (x + 1, top + th + 1), FONT, scale, ink, 1, cv2.LINE_AA)


def draw_boxes(
    image: Any,
    boxes: Any,
    labels: Any,
    scores: Any | None = None,
    class_names: Sequence[str] | None = None,
    score_threshold: float = 0.0,
    dashed: bool = False,
    thickness: int = 2,
    font_scale: float = 0.5,
) -> np.ndarray:
    """Draw boxes with class-coloured outlines and "name score" tags.

    Args:
        image: uint8 [H, W, 3] RGB (or torch uint8 [3, H, W]); not modified.
        boxes: [K, 4] xyxy in this image's pixels.
        labels: [K] contiguous class labels (index class_names and class_color).
        scores: [K] or None (ground truth). Boxes with score < score_threshold are skipped.
        class_names: names per label; None writes the label number.
        dashed: dashed outlines (the ground-truth style).
    Returns:
        uint8 [H, W, 3] RGB copy with the drawing.
    """
    canvas = _check_image(image)
    boxes = _numpy(boxes, np.float64).reshape(-1, 4)
    labels = _numpy(labels, np.int64).reshape(-1)
    scores_np = None if scores is None else _numpy(scores, np.float64).reshape(-1)
    if len(boxes) != len(labels) or (scores_np is not None and len(scores_np) != len(boxes)):
        raise ValueError(
            f"boxes ({len(boxes)}), labels ({len(labels)}) and scores must have the same length K"
        )
    order = np.argsort(scores_np, kind="stable") if scores_np is not None else np.arange(len(boxes))
    for i in order:  # lowest score first, so the most confident box ends on top
        if scores_np is not None and scores_np[i] < score_threshold:
            continue
        label = int(labels[i])
        color = class_color(label)
        x1, y1, x2, y2 = (int(round(v)) for v in boxes[i])
        if dashed:
            _dashed_rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        else:
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        name = class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)
        text = name if scores_np is None else f"{name} {scores_np[i]:.2f}"
        _tag(canvas, text, max(x1, 0), max(y1, 0), color, font_scale)
    return canvas


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
        small, pred_boxes = _fit(base, _numpy(pred["boxes"], np.float64).reshape(-1, 4), max_width)
        panel = draw_boxes(small, pred_boxes, pred["labels"], pred["scores"], class_names, score_threshold)
        _caption(panel, "prediction")
        panels = [panel]
        if ground_truths is not None:
            gt = ground_truths[i]
            _, gt_boxes = _fit(base, _numpy(gt["boxes"], np.float64).reshape(-1, 4), max_width)
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
