"""Contrastive denoising queries (positive + negative noisy copies of the ground truth) and their mask."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torchvision.ops import box_convert

from .layers import inverse_sigmoid


def build_denoising_queries(
    targets: list[dict[str, torch.Tensor]],
    num_classes: int,
    num_queries: int,
    class_embed: nn.Embedding,
    num_denoising: int = 100,
    label_noise_ratio: float = 0.5,
    box_noise_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Build noisy ground-truth queries for one batch.

    With G = max(1, num_denoising // max_gt) groups, each group holds max_gt positives then max_gt
    negatives (padding slots use the padding class `num_classes` and a zero box). A batch without any
    box still yields one group of padding queries, so the graph (and DDP's used parameters) is the
    same on every rank.

    Returns:
        dn_query: [B, D, C] class-embedded content queries (D = 2 * max_gt * G)
        dn_ref_unact: [B, D, 4] noisy boxes in logit space
        attn_mask: [D + num_queries, D + num_queries] bool, True = may NOT attend
        dn_meta: {"dn_positive_idx": list of B host int64 [n_i * G] (positions in D, group-major),
                  "dn_num_group": G,
                  "dn_num_split": [D, num_queries]}
    """
    device = class_embed.weight.device
    num_gts = [len(t["labels"]) for t in targets]
    b = len(targets)
    max_gt = max(max(num_gts, default=0), 1)
    groups = max(1, num_denoising // max_gt)

    if max(num_gts, default=0) > 0:  # pad every image's ground truth to max_gt: one op each, no per-image copies
        labels = pad_sequence([t["labels"].to(device=device, dtype=torch.long) for t in targets], batch_first=True, padding_value=num_classes)
        boxes = pad_sequence([t["boxes"].to(device=device, dtype=torch.get_default_dtype()) for t in targets],
                             batch_first=True)
    else:
        labels = torch.full((b, max_gt), num_classes, dtype=torch.long, device=device)
        boxes = torch.zeros(b, max_gt, 4, device=device)
    valid = labels < num_classes  # real labels are 0..num_classes-1, padding is num_classes

    labels = labels.repeat(1, 2 * groups)
    boxes = boxes.repeat(1, 2 * groups, 1)
    valid = valid.repeat(1, 2 * groups)
    negative = torch.zeros(b, 2 * max_gt, 1, device=device)
    negative[:, max_gt:] = 1
    negative = negative.repeat(1, groups, 1)
    # positive query k of group g sits at g * 2 * max_gt + k: known on the host from the counts, no nonzero()
    group_start = torch.arange(groups, dtype=torch.int64)[:, None] * (2 * max_gt)
    positive_idx = [(group_start + torch.arange(n, dtype=torch.int64)[None, :]).flatten() for n in num_gts]
    num_dn = 2 * max_gt * groups

    if label_noise_ratio > 0:
        flip = torch.rand(labels.shape, device=device) < label_noise_ratio * 0.5
        new_labels = torch.randint_like(labels, 0, num_classes)
        labels = torch.where(flip & valid, new_labels, labels)

    if box_noise_scale > 0:
        xyxy = box_convert(boxes, "cxcywh", "xyxy")
        diff = (boxes[..., 2:] * 0.5).repeat(1, 1, 2) * box_noise_scale
        sign = torch.randint_like(boxes, 0, 2) * 2.0 - 1.0
        part = torch.rand_like(boxes)
        part = (part + 1.0) * negative + part * (1 - negative)
        xyxy = (xyxy + part * sign * diff).clamp(0.0, 1.0)
        boxes = box_convert(xyxy, "xyxy", "cxcywh")
    ref_unact = inverse_sigmoid(boxes)
    query = class_embed(labels)

    size = num_dn + num_queries
    group_id = torch.arange(size, device=device) // (2 * max_gt)
    is_dn = torch.arange(size, device=device) < num_dn
    # matching queries never see dn queries; dn groups never see each other
    attn_mask = is_dn[None, :] & (~is_dn[:, None] | (group_id[:, None] != group_id[None, :]))
    meta = {
        "dn_positive_idx": positive_idx,
        "dn_num_group": groups,
        "dn_num_split": [num_dn, num_queries],
    }
    return query, ref_unact, attn_mask, meta
