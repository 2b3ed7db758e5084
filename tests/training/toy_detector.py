"""A few-hundred-parameter stand-in detector with the contract's net/criterion/postprocessor interfaces.

Used only where a test checks training machinery (EMA, non-finite loss, RNG restore) and the real
RT-DETR adds nothing but time; end-to-end tests use the real ``tiny`` preset.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import box_convert


class ToyNet(nn.Module):
    """images uint8 [B, 3, H, W] -> pred_logits [B, Q, C], pred_boxes [B, Q, 4] (sigmoid cxcywh)."""

    def __init__(self, num_classes: int = 5, num_queries: int = 8, noise: float = 0.0) -> None:
        super().__init__()
        self.num_classes, self.num_queries, self.noise = num_classes, num_queries, noise
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.BatchNorm2d(8), nn.ReLU())
        self.query = nn.Embedding(num_queries, 8)
        self.cls = nn.Linear(8, num_classes)
        self.box = nn.Linear(8, 4)

    def forward(self, images: torch.Tensor, targets=None) -> dict[str, torch.Tensor]:
        feat = self.backbone(images.float() / 255).mean((2, 3))  # [B, 8]
        hidden = feat[:, None, :] + self.query.weight[None]  # [B, Q, 8]
        if self.training and self.noise:
            hidden = hidden + self.noise * torch.randn_like(hidden)  # consumes the torch RNG like denoising does
        return {"pred_logits": self.cls(hidden), "pred_boxes": self.box(hidden).sigmoid()}


class ToyCriterion(nn.Module):
    """Two weighted terms: every query regresses the first target box; class BCE on its label.

    nan_at_call: from this (0-based) training call on, the box term is NaN (to test the non-finite-loss
    stop); validation-loss calls (the module in eval mode) are not counted.
    """

    def __init__(self, nan_at_call: int | None = None) -> None:
        super().__init__()
        self.nan_at_call, self.calls = nan_at_call, 0

    def forward(self, outputs, targets) -> dict[str, torch.Tensor]:
        self.calls += int(self.training)
        poison = float("nan") if self.nan_at_call is not None and self.calls > self.nan_at_call else 0.0
        logits, boxes = outputs["pred_logits"].float(), outputs["pred_boxes"].float()
        goal_boxes, goal_cls = [], []
        for t in targets:
            box = t["boxes"][:1] if len(t["boxes"]) else boxes.new_tensor([[0.5, 0.5, 0.1, 0.1]])
            onehot = torch.zeros(logits.shape[-1], device=logits.device)
            if len(t["labels"]):
                onehot[t["labels"][0]] = 1
            goal_boxes.append(box.expand(boxes.shape[1], 4))
            goal_cls.append(onehot.expand(logits.shape[1], -1))
        return {
            "loss_bbox": 5 * (boxes - torch.stack(goal_boxes)).abs().mean() + poison,
            "loss_cls": nn.functional.binary_cross_entropy_with_logits(logits, torch.stack(goal_cls)),
        }


class ToyPostprocessor(nn.Module):
    """Top-k over queries x classes; boxes mapped to original pixels with the letterbox."""

    def forward(self, outputs, targets) -> list[dict[str, torch.Tensor]]:
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        _, queries, classes = logits.shape
        results = []
        for i, t in enumerate(targets):
            scores, idx = logits[i].sigmoid().flatten().topk(min(10, queries * classes))
            labels, q = idx % classes, idx // classes
            sx, sy, px, py = t["letterbox"].float().tolist()
            orig_h, orig_w = t["orig_size"].tolist()
            canvas_w, canvas_h = orig_w * sx + 2 * px, orig_h * sy + 2 * py  # toy: symmetric padding
            xyxy = box_convert(boxes[i, q].float(), "cxcywh", "xyxy")
            scale = boxes.new_tensor([canvas_w, canvas_h, canvas_w, canvas_h])
            xyxy = xyxy * scale
            xyxy = (xyxy - boxes.new_tensor([px, py, px, py])) / boxes.new_tensor([sx, sy, sx, sy])
            results.append({"scores": scores, "labels": labels, "boxes": xyxy})
        return results
