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


def fgl_loss(
    logits: Tensor,
    target: Tensor,
    project: Tensor,
    weight: Tensor | None = None,
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Fine-grained localisation loss: cross-entropy to the two bins around each target.

    Args:
        logits: (N, reg_max + 1) bin scores of N edges.
        target: (N,) target distances.
        project: (reg_max + 1,) bin values.
        weight: (N,) optional per-edge weights (D-FINE uses the matched box's IoU).
        avg_factor: when given, the weighted sum is divided by it instead (D-FINE: the number of
            matched boxes, so each box contributes the sum over its four edges).

    Returns:
        scalar: weighted mean over edges of wl * CE(left) + wr * CE(left + 1).
    """
    left, weight_left, weight_right = split_target(target, project)
    log_p = F.log_softmax(logits, dim=-1)
    per_edge = -(weight_left * log_p.gather(1, left[:, None])[:, 0]
                 + weight_right * log_p.gather(1, left[:, None] + 1)[:, 0])
    if avg_factor is not None:
        return (per_edge if weight is None else per_edge * weight).sum() / avg_factor
    if weight is None:
        return per_edge.mean()
    return (per_edge * weight).sum() / weight.sum().clamp_min(1e-6)


def ddf_loss(
    student: Tensor,
    teacher: Tensor,
    weight: Tensor,
    positive: Tensor,
    num_pos: float,
    num_neg: float,
    temperature: float = 5.0,
) -> Tensor:
    """Decoupled distillation focal loss of GO-LSD: an earlier layer's edge distributions learn the last one's.

    Args:
        student: (N, reg_max + 1) bin logits of N edges (an earlier decoder layer).
        teacher: (N, reg_max + 1) bin logits of the same edges from the last layer (not back-propagated).
        weight: (N,) per-edge weight (D-FINE: the matched box's IoU for matched queries, the teacher's
            top class probability for the others).
        positive: (N,) bool, edges of matched queries.
        num_pos, num_neg: how much the matched and the unmatched edges' means weigh in the result.
        temperature: softening of both distributions; the KL is scaled by its square.

    Returns:
        scalar: (num_pos * mean over matched + num_neg * mean over unmatched) / (num_pos + num_neg) of
        weight * T^2 * KL(softmax(teacher / T) || softmax(student / T)); a group without edges adds 0.
    """
    log_student = F.log_softmax(student / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher.detach() / temperature, dim=-1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(-1)
    per_edge = weight * temperature**2 * kl
    positive = positive.to(per_edge.dtype)
    negative = 1 - positive
    pos = (per_edge * positive).sum() / positive.sum().clamp(min=1)  # masked means without a host read
    neg = (per_edge * negative).sum() / negative.sum().clamp(min=1)
    return (pos * num_pos + neg * num_neg) / max(num_pos + num_neg, 1e-12)
