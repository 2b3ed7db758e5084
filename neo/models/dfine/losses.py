"""D-FINE's fine-grained localisation (FGL) loss on edge distributions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def split_target(target: Tensor, project: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Place continuous edge distances between their two neighbouring bins.

    Args:
        target: (N,) distances in the units of ``project``.
        project: (reg_max + 1,) increasing bin values from ``weighting_function``.

    Returns:
        left: (N,) long index of the bin at or below the (clamped) target, in [0, reg_max - 1].
        weight_left: (N,) share of the left bin, in [0, 1].
        weight_right: (N,) ``1 - weight_left``; left * wl + right * wr reproduces the target.
    """
    project = project.to(target)
    t = target.clamp(project[0], project[-1])
    left = (torch.searchsorted(project, t.contiguous(), right=True) - 1).clamp(0, project.numel() - 2)
    lo, hi = project[left], project[left + 1]
    weight_right = ((t - lo) / (hi - lo)).clamp(0, 1)
    return left, 1 - weight_right, weight_right


def fgl_loss(logits: Tensor, target: Tensor, project: Tensor, weight: Tensor | None = None) -> Tensor:
    """Fine-grained localisation loss: cross-entropy to the two bins around each target.

    Args:
        logits: (N, reg_max + 1) bin scores of N edges.
        target: (N,) target distances.
        project: (reg_max + 1,) bin values.
        weight: (N,) optional per-edge weights (D-FINE uses the matched box's IoU).

    Returns:
        scalar: weighted mean over edges of wl * CE(left) + wr * CE(left + 1).
    """
    left, weight_left, weight_right = split_target(target, project)
    log_p = F.log_softmax(logits, dim=-1)
    per_edge = -(weight_left * log_p.gather(1, left[:, None])[:, 0]
                 + weight_right * log_p.gather(1, left[:, None] + 1)[:, 0])
    if weight is None:
        return per_edge.mean()
    return (per_edge * weight).sum() / weight.sum().clamp_min(1e-6)
