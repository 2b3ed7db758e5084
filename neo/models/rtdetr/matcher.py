"""Hungarian matcher: optimal one-to-one assignment of predictions to ground truth (scipy)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou


class HungarianMatcher(nn.Module):
    """Cost = cost_class * focal class cost + cost_bbox * L1(cxcywh) + cost_giou * (-GIoU).

    forward(outputs {"pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4]}, targets list of
    {"labels" [N_i], "boxes" [N_i, 4]}) -> list of B (pred_idx int64 [K_i], gt_idx int64 [K_i]),
    K_i = min(Q, N_i). :meth:`match_many` matches several prediction sets with one device -> host copy.
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
        return self.match_many([outputs], targets)[0]

    @torch.no_grad()
    def match_many(self, sets: list[dict], targets: list[dict]) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Match several prediction sets (final, auxiliary, encoder outputs) to the same targets at once.

        The cost matrices of every set and image are computed on the device and copied to the host in ONE
        transfer (the step's only wait for the device here); scipy then solves each image's assignment.
        Returns, per set, what :meth:`forward` returns: B pairs of host int64 tensors (pred_idx, gt_idx).
        """
        sizes = [len(t["boxes"]) for t in targets]
        empty = torch.zeros(0, dtype=torch.int64)
        if sum(sizes) == 0:
            return [[(empty, empty) for _ in targets] for _ in sets]
        labels = torch.cat([t["labels"] for t in targets])
        gt = torch.cat([t["boxes"] for t in targets])
        shapes, costs = [], []
        for outputs in sets:
            b, q = outputs["pred_logits"].shape[:2]
            cost = self.cost_matrix(
                outputs["pred_logits"].flatten(0, 1), outputs["pred_boxes"].flatten(0, 1), labels, gt
            )
            costs.append(cost.nan_to_num(nan=1e8, posinf=1e8, neginf=-1e8).flatten())
            shapes.append((b, q))
        host = torch.cat(costs).cpu().numpy()  # [sum over sets of B*Q*N] float32: one device -> host copy
        starts = np.cumsum([0, *sizes])
        result, offset, total = [], 0, int(starts[-1])
        for b, q in shapes:
            cost = host[offset:offset + b * q * total].reshape(b, q, total)
            offset += b * q * total
            indices = []
            for i, n in enumerate(sizes):
                if n == 0:
                    indices.append((empty, empty))
                    continue
                rows, cols = linear_sum_assignment(cost[i, :, starts[i]:starts[i + 1]])
                indices.append(
                    (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
                )
            result.append(indices)
        return result
