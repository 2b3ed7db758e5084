"""Detection confusion matrix with a background row and column, from a COCOeval's ground truth and detections.

Per image, detections with score >= ``score_threshold`` are matched one-to-one to non-crowd ground-truth
boxes regardless of class (Hungarian assignment on IoU, pairs below ``iou_threshold`` never match):
- a matched pair counts at (true class, predicted class): the diagonal is right, off-diagonal a class mix-up;
- a ground-truth box left unmatched counts at (true class, background): a miss;
- a detection left unmatched counts at (background, predicted class): a false alarm, unless it lies on a
  crowd region (at least ``iou_threshold`` of its area inside a crowd box), which COCO ignores as well.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_convert, box_iou


def _xyxy(boxes_xywh: list[list[float]]) -> torch.Tensor:
    return box_convert(torch.tensor(boxes_xywh, dtype=torch.float64).reshape(-1, 4), "xywh", "xyxy")


def confusion_matrix(cocoeval, score_threshold: float = 0.3, iou_threshold: float = 0.5) -> np.ndarray:
    """Counts int64 [C + 1, C + 1]: rows true class, columns predicted class, index C = background.

    Classes are ``cocoeval.params.catIds`` in that order; images are ``cocoeval.params.imgIds``.
    """
    category_ids = [int(c) for c in cocoeval.params.catIds]
    index = {cid: i for i, cid in enumerate(category_ids)}
    background = len(category_ids)
    image_ids = set(int(i) for i in cocoeval.params.imgIds)
    truths: dict[int, list[dict]] = defaultdict(list)
    crowds: dict[int, list[dict]] = defaultdict(list)
    for annotation in cocoeval.cocoGt.dataset.get("annotations", []):
        if int(annotation["image_id"]) in image_ids and int(annotation["category_id"]) in index:
            (crowds if annotation.get("iscrowd", 0) else truths)[int(annotation["image_id"])].append(annotation)
    detections: dict[int, list[dict]] = defaultdict(list)
    for detection in cocoeval.cocoDt.dataset.get("annotations", []):
        if int(detection["image_id"]) in image_ids and float(detection["score"]) >= score_threshold \
                and int(detection["category_id"]) in index:
            detections[int(detection["image_id"])].append(detection)

    matrix = np.zeros((background + 1, background + 1), dtype=np.int64)
    for image_id in image_ids:
        gts, dts = truths.get(image_id, []), detections.get(image_id, [])
        gt_classes = [index[int(a["category_id"])] for a in gts]
        dt_classes = [index[int(d["category_id"])] for d in dts]
        matched_gt, matched_dt = set(), set()
        if gts and dts:
            iou = box_iou(_xyxy([a["bbox"] for a in gts]), _xyxy([d["bbox"] for d in dts])).numpy()
            rows, cols = linear_sum_assignment(iou, maximize=True)
            for g, d in zip(rows.tolist(), cols.tolist(), strict=True):
                if iou[g, d] >= iou_threshold:
                    matrix[gt_classes[g], dt_classes[d]] += 1
                    matched_gt.add(g)
                    matched_dt.add(d)
        for g, cls in enumerate(gt_classes):
            if g not in matched_gt:
                matrix[cls, background] += 1
        on_crowd = _inside_crowd(dts, crowds.get(image_id, []), iou_threshold)
        for d, cls in enumerate(dt_classes):
            if d not in matched_dt and not on_crowd[d]:
                matrix[background, cls] += 1
    return matrix


def _inside_crowd(detections: list[dict], crowds: list[dict], threshold: float) -> list[bool]:
    """Per detection: does a crowd box cover at least ``threshold`` of its area?"""
    if not detections or not crowds:
        return [False] * len(detections)
    dts, crowd = _xyxy([d["bbox"] for d in detections]), _xyxy([c["bbox"] for c in crowds])
    top_left = torch.maximum(dts[:, None, :2], crowd[None, :, :2])
    bottom_right = torch.minimum(dts[:, None, 2:], crowd[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)  # [D, G]
    area = (dts[:, 2:] - dts[:, :2]).prod(dim=1).clamp(min=1e-9)[:, None]
    return ((inter / area) >= threshold).any(dim=1).tolist()
