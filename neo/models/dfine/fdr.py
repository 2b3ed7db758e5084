"""Fine-grained distribution refinement (FDR) math of D-FINE.

Each box edge is a distance from the reference box's edge, predicted as a probability
distribution over ``reg_max + 1`` bins. The bin values come from the non-uniform weighting
function W(n): dense near zero (fine corrections), sparse towards the ends (coarse ones).
"""

from __future__ import annotations

import torch
from torch import Tensor


def weighting_function(reg_max: int, up: float, reg_scale: float) -> Tensor:
    """Bin values W(n) for n = 0..reg_max.

    Returns:
        (reg_max + 1,) float tensor, increasing, antisymmetric around the middle bin (value 0),
        ends at ``-2 * |up * reg_scale|`` and ``+2 * |up * reg_scale|``.
    """
    if reg_max < 4 or reg_max % 2:
        raise ValueError(f"reg_max must be an even number >= 4, got {reg_max}")
    bound = abs(up) * abs(reg_scale)
    step = (bound + 1.0) ** (2.0 / (reg_max - 2))
    half = reg_max // 2
    right = [step**i - 1.0 for i in range(1, half)]
    left = [-v for v in reversed(right)]
    values = [-2.0 * bound, *left, 0.0, *right, 2.0 * bound]
    return torch.tensor(values, dtype=torch.float32)


def integral(logits: Tensor, project: Tensor) -> Tensor:
    """Expected edge distances from per-edge bin logits.

    Args:
        logits: (..., 4 * (reg_max + 1)) raw scores, edges in order left, top, right, bottom.
        project: (reg_max + 1,) bin values from :func:`weighting_function`.

    Returns:
        (..., 4) expected distances sum_n softmax(logits)_n * W(n).
    """
    bins = project.numel()
    probs = logits.reshape(*logits.shape[:-1], 4, bins).softmax(dim=-1)
    return probs @ project.to(probs)


def distance_to_box(points: Tensor, distance: Tensor, reg_scale: float) -> Tensor:
    """Refined boxes from reference boxes and edge distances.

    Args:
        points: (..., 4) reference boxes cxcywh.
        distance: (..., 4) edge offsets (left, top, right, bottom) in units of
            width / reg_scale (height for top/bottom); 0 leaves the reference box unchanged.
        reg_scale: scale of the offsets.

    Returns:
        (..., 4) boxes cxcywh.
    """
    cx, cy, w, h = points.unbind(-1)
    half = 0.5 * reg_scale
    x1 = cx - (half + distance[..., 0]) * w / reg_scale
    y1 = cy - (half + distance[..., 1]) * h / reg_scale
    x2 = cx + (half + distance[..., 2]) * w / reg_scale
    y2 = cy + (half + distance[..., 3]) * h / reg_scale
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def box_to_distance(points: Tensor, boxes_xyxy: Tensor, reg_scale: float) -> Tensor:
    """Edge distances that turn reference boxes into target boxes (inverse of distance_to_box).

    Args:
        points: (..., 4) reference boxes cxcywh.
        boxes_xyxy: (..., 4) target boxes x1y1x2y2.
        reg_scale: scale of the offsets.

    Returns:
        (..., 4) distances (left, top, right, bottom).
    """
    cx, cy, w, h = points.unbind(-1)
    sx = w / reg_scale + 1e-16
    sy = h / reg_scale + 1e-16
    half = 0.5 * reg_scale
    return torch.stack(
        [
            (cx - boxes_xyxy[..., 0]) / sx - half,
            (cy - boxes_xyxy[..., 1]) / sy - half,
            (boxes_xyxy[..., 2] - cx) / sx - half,
            (boxes_xyxy[..., 3] - cy) / sy - half,
        ],
        dim=-1,
    )


class LocalizationQuality(torch.nn.Module):
    """LQE: adjusts class scores by how peaked the edge distributions are.

    The top-k probabilities of each edge's distribution and their mean (4 * (k + 1) numbers per
    query) go through a small MLP whose output is added to every class score.
    """

    def __init__(self, reg_max: int, k: int = 4, hidden_dim: int = 64, num_layers: int = 2):
        super().__init__()
        self.reg_max, self.k = reg_max, k
        dims = [4 * (k + 1)] + [hidden_dim] * (num_layers - 1) + [1]
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(torch.nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(torch.nn.ReLU())
        self.mlp = torch.nn.Sequential(*layers)
        torch.nn.init.zeros_(self.mlp[-1].weight)
        torch.nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, scores: Tensor, corner_logits: Tensor) -> Tensor:
        """Args: scores (B, Q, C) class logits; corner_logits (B, Q, 4 * (reg_max + 1)).

        Returns: (B, Q, C) adjusted class logits.
        """
        b, q, _ = corner_logits.shape
        probs = corner_logits.reshape(b, q, 4, self.reg_max + 1).softmax(dim=-1)
        top = probs.topk(self.k, dim=-1).values
        stat = torch.cat([top, top.mean(dim=-1, keepdim=True)], dim=-1).reshape(b, q, -1)
        return scores + self.mlp(stat)
