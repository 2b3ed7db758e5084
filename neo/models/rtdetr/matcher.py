"""Hungarian matcher: optimal one-to-one assignment of predictions to ground truth (scipy)."""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou


class HungarianMatcher(nn.Module):
    """Cost = cost_class * focal class cost + cost_bbox * L1(cxcywh) + cost_giou * (-GIoU).

    forward(outputs {"pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4]}, targets list of
    {"labels" [N_i], "boxes" [N_i, 4]}) -> list of B (pred_idx int64 [K_i], gt_idx int64 [K_i]),
    K_i = min(Q, N_i).
    """

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        alpha: float = 0.25,
        gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def cost_matrix(self, logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, gt: torch.Tensor):
        """logits [P, C], boxes [P, 4], labels [N], gt [N, 4] -> cost [P, N] (fp32)."""
        prob = logits.float().sigmoid()[:, labels]
        neg = (1 - self.alpha) * prob**self.gamma * -(1 - prob + 1e-8).log()
        pos = self.alpha * (1 - prob) ** self.gamma * -(prob + 1e-8).log()
        boxes, gt = boxes.float(), gt.float()
        cost_bbox = torch.cdist(boxes, gt, p=1)
        cost_giou = -generalized_box_iou(
            box_convert(boxes, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy")
        )
        return self.cost_bbox * cost_bbox + self.cost_class * (pos - neg) + self.cost_giou * cost_giou

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        b, q = outputs["pred_logits"].shape[:2]
        sizes = [len(t["boxes"]) for t in targets]
        empty = torch.zeros(0, dtype=torch.int64)
        if sum(sizes) == 0:
            return [(empty, empty) for _ in targets]
        labels = torch.cat([t["labels"] for t in targets])
        gt = torch.cat([t["boxes"] for t in targets])
        cost = self.cost_matrix(
            outputs["pred_logits"].flatten(0, 1), outputs["pred_boxes"].flatten(0, 1), labels, gt
        )
        cost = cost.nan_to_num(nan=1e8, posinf=1e8, neginf=-1e8).view(b, q, -1).cpu()
        indices = []
        for i, c in enumerate(cost.split(sizes, -1)):
            if sizes[i] == 0:
                indices.append((empty, empty))
                continue
            rows, cols = linear_sum_assignment(c[i].numpy())
            indices.append(
                (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return indices
