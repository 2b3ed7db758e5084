"""PostProcessor: top-k detections over query x class, boxes mapped back to original image pixels."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import batched_nms, box_convert


class PostProcessor(nn.Module):
    """Turn raw outputs into per-image detections.

    Args:
        num_classes: C.
        num_top_queries: K, detections kept per image (official 300) from all Q x C scores.
        score_threshold: drop detections below it (None = keep all, official).
        nms_iou_threshold: class-aware NMS IoU (None = no NMS, official).

    forward(outputs, targets=None) -> list of B dicts:
        "scores" [K'] float, "labels" [K'] int64 (contiguous 0..C-1), "boxes" [K', 4] xyxy.
        With targets (each with "letterbox" [4] = (scale_x, scale_y, pad_x, pad_y) and "orig_size"
        [2] = (h, w)), boxes are in ORIGINAL image pixels, clipped to the image:
        orig = (canvas_px - pad) / scale, canvas_px = normalised * (W, H) of the network input
        (`outputs["image_size"]`). With targets=None, boxes are xyxy normalised to the canvas [0, 1].
    """

    def __init__(
        self,
        num_classes: int,
        num_top_queries: int = 300,
        score_threshold: float | None = None,
        nms_iou_threshold: float | None = None,
    ) -> None:
        super().__init__()
        self.num_classes, self.num_top_queries = num_classes, num_top_queries
        self.score_threshold, self.nms_iou_threshold = score_threshold, nms_iou_threshold

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict] | None = None) -> list[dict[str, torch.Tensor]]:
        logits, boxes = outputs["pred_logits"].float(), outputs["pred_boxes"].float()
        b, q, c = logits.shape
        boxes = box_convert(boxes, "cxcywh", "xyxy")
        if targets is not None:
            boxes = self.to_original_pixels(boxes, outputs["image_size"], targets)
        k = min(self.num_top_queries, q * c)
        scores, index = logits.sigmoid().flatten(1).topk(k, dim=1)
        labels = index % c
        boxes = boxes.gather(1, (index // c)[..., None].expand(-1, -1, 4))
        results = []
        for s, lab, bx in zip(scores, labels, boxes, strict=True):
            if self.score_threshold is not None:
                keep = s > self.score_threshold
                s, lab, bx = s[keep], lab[keep], bx[keep]
            if self.nms_iou_threshold is not None:
                keep = batched_nms(bx, s, lab, self.nms_iou_threshold)
                s, lab, bx = s[keep], lab[keep], bx[keep]
            results.append({"scores": s, "labels": lab, "boxes": bx})
        return results

    @staticmethod
    def to_original_pixels(
        boxes: torch.Tensor, image_size: torch.Tensor, targets: list[dict]
    ) -> torch.Tensor:
        """boxes [B, Q, 4] xyxy normalised to the canvas -> original pixels (letterbox undone, clipped)."""
        h, w = (float(v) for v in image_size)
        device = boxes.device
        letterbox = torch.stack([t["letterbox"].to(device, torch.float32) for t in targets])  # [B, 4]
        orig = torch.stack([t["orig_size"].to(device, torch.float32) for t in targets])  # [B, 2] (h, w)
        canvas = boxes * torch.tensor([w, h, w, h], device=device)
        scale = letterbox[:, [0, 1, 0, 1]][:, None]
        pad = letterbox[:, [2, 3, 2, 3]][:, None]
        out = (canvas - pad) / scale
        limit = orig[:, [1, 0, 1, 0]][:, None]
        return torch.minimum(out.clamp(min=0), limit)
