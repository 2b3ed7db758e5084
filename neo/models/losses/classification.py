"""Classification losses of the DETR criteria, by name: varifocal (RT-DETR, D-FINE), matchability-aware (DEIM), focal.

Every loss takes the same tensors, all [B, Q, C]:
    logits  the class logits of B images x Q queries x C classes;
    onehot  1 at (image, query, class) of each matched pair, 0 elsewhere;
    iou     the matched prediction's IoU with its ground truth at the same places (detached), 0 elsewhere;
plus ``alpha`` and ``gamma``, and returns the per-element loss [B, Q, C]. :func:`classification_loss`
reduces it the way every DETR criterion here does: mean over queries, sum over images and classes,
times Q, divided by the number of ground-truth boxes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def varifocal(logits: torch.Tensor, onehot: torch.Tensor, iou: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Varifocal loss (VarifocalNet; RT-DETR's and D-FINE's default) per element -> [B, Q, C].

    BCE(logits, iou) weighted by ``iou`` at the positives and ``alpha * sigmoid(logits)^gamma`` at the
    negatives (the weight is not differentiated). RT-DETR: alpha 0.75, gamma 2.
    """
    prob = logits.detach().sigmoid()
    weight = alpha * prob.pow(gamma) * (1 - onehot) + iou
    return F.binary_cross_entropy_with_logits(logits, iou, weight=weight, reduction="none")


def matchability_aware_loss(
    logits: torch.Tensor, onehot: torch.Tensor, iou: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """Matchability-aware loss (DEIM, CVPR 2025) per element -> [B, Q, C].

    BCE(logits, iou^gamma): a positive's target is its IoU raised to ``gamma``, so a low-IoU match
    (frequent with dense one-to-one matching) still pulls its score up instead of being ignored; every
    positive weighs 1 (VFL weighs it by its IoU), a negative ``alpha * sigmoid(logits)^gamma``
    (the weight is not differentiated). DEIM: gamma 1.5, alpha 1 (its ``mal_alpha`` left unset).
    """
    prob = logits.detach().sigmoid()
    weight = alpha * prob.pow(gamma) * (1 - onehot) + onehot
    return F.binary_cross_entropy_with_logits(logits, iou.pow(gamma), weight=weight, reduction="none")


def focal(logits: torch.Tensor, onehot: torch.Tensor, iou: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Sigmoid focal loss (RetinaNet) against the one-hot target, ``iou`` unused, per element -> [B, Q, C].

    Same value as ``torchvision.ops.sigmoid_focal_loss(logits, onehot, alpha, gamma)``.
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    p_t = prob * onehot + (1 - prob) * (1 - onehot)
    alpha_t = alpha * onehot + (1 - alpha) * (1 - onehot)
    return alpha_t * ce * (1 - p_t).pow(gamma)


# The one name table: a criterion's ``classification`` setting picks one; its term is "loss_<name>".
CLASSIFICATION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "vfl": varifocal,
    "mal": matchability_aware_loss,
    "focal": focal,
}


def check_classification(name: str) -> str:
    """``name`` when it is in CLASSIFICATION_LOSSES, else a ValueError naming the value and the choices."""
    if name not in CLASSIFICATION_LOSSES:
        raise ValueError(
            f"criterion classification={name!r} is not a classification loss: use one of "
            f"{sorted(CLASSIFICATION_LOSSES)} (e.g. model.criterion.classification=vfl)"
        )
    return name


def classification_loss(
    name: str,
    logits: torch.Tensor,
    onehot: torch.Tensor,
    iou: torch.Tensor,
    alpha: float,
    gamma: float,
    num_boxes: float | torch.Tensor,
) -> torch.Tensor:
    """The scalar term of loss ``name``: per-element loss [B, Q, C] -> mean over Q, sum, x Q / num_boxes."""
    loss = CLASSIFICATION_LOSSES[name](logits, onehot, iou, alpha, gamma)
    return loss.mean(1).sum() * logits.shape[1] / num_boxes
