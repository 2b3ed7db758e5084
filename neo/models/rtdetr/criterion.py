"""SetCriterion: VFL + L1 + GIoU on the final, auxiliary, encoder and denoising outputs (in fp32)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, box_iou, generalized_box_iou

from .matcher import HungarianMatcher


class SetCriterion(nn.Module):
    """RT-DETR loss.

    Args:
        num_classes: C.
        matcher: a HungarianMatcher.
        weight_vfl, weight_bbox, weight_giou: term weights (official 1, 5, 2).
        alpha, gamma: varifocal loss parameters (official 0.75, 2.0).

    forward(outputs, targets) -> dict of weighted scalar terms, sum = total loss. Names:
        "loss_vfl", "loss_bbox", "loss_giou"            final decoder layer
        "loss_*_aux_{i}"  i = 0..N-2                     other decoder layers
        "loss_*_enc"                                     encoder top-k proposals
        "loss_*_dn_{i}"   i = 0..N-1                     denoising queries (fixed matching)
    i.e. 3 * (2N + 1) terms with denoising, 3 * (N + 1) without (R50: 39).
    """

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher | None = None,
        weight_vfl: float = 1.0,
        weight_bbox: float = 5.0,
        weight_giou: float = 2.0,
        alpha: float = 0.75,
        gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher if matcher is not None else HungarianMatcher()
        self.weights = {"loss_vfl": weight_vfl, "loss_bbox": weight_bbox, "loss_giou": weight_giou}
        self.alpha, self.gamma = alpha, gamma

    @staticmethod
    def num_boxes(targets: list[dict], device: torch.device) -> float:
        """Ground-truth count averaged over ranks (all-reduced when distributed), at least 1."""
        n = torch.tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(n)
            n = n / dist.get_world_size()
        return max(float(n.item()), 1.0)

    def terms(
        self,
        out: dict,
        targets: list[dict],
        indices: list[tuple[torch.Tensor, torch.Tensor]],
        num_boxes: float,
    ) -> dict[str, torch.Tensor]:
        """Unweighted VFL, L1 and GIoU for one set of predictions."""
        logits = out["pred_logits"].float()  # [B, Q, C]
        pred_boxes = out["pred_boxes"].float()  # [B, Q, 4]
        device = logits.device
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)]).to(device)
        src_idx = torch.cat([src for src, _ in indices]).to(device)
        src = pred_boxes[batch_idx, src_idx]  # [K, 4]
        gt = torch.cat(
            [t["boxes"][j.to(t["boxes"].device)] for t, (_, j) in zip(targets, indices, strict=True)]
        ).to(src)
        labels = torch.cat(
            [t["labels"][j.to(t["labels"].device)] for t, (_, j) in zip(targets, indices, strict=True)]
        ).to(device)

        src_xyxy, gt_xyxy = box_convert(src, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy")
        iou = torch.diag(box_iou(src_xyxy.detach(), gt_xyxy)) if len(src) else src.new_zeros(0)
        target_score = torch.zeros_like(logits)  # one-hot x IoU at matched (query, class)
        target_score[batch_idx, src_idx, labels] = iou.detach().nan_to_num(0.0).clamp(min=0.0)
        onehot = torch.zeros_like(logits)
        onehot[batch_idx, src_idx, labels] = 1.0
        prob = logits.detach().sigmoid()
        weight = self.alpha * prob.pow(self.gamma) * (1 - onehot) + target_score
        vfl = F.binary_cross_entropy_with_logits(logits, target_score, weight=weight, reduction="none")
        loss_vfl = vfl.mean(1).sum() * logits.shape[1] / num_boxes
        loss_bbox = F.l1_loss(src, gt, reduction="sum") / num_boxes
        giou = torch.diag(generalized_box_iou(src_xyxy, gt_xyxy)) if len(src) else src.new_zeros(0)
        loss_giou = (1 - giou).sum() / num_boxes
        return {"loss_vfl": loss_vfl, "loss_bbox": loss_bbox, "loss_giou": loss_giou}

    def weighted(self, terms: dict[str, torch.Tensor], suffix: str) -> dict[str, torch.Tensor]:
        return {f"{k}{suffix}": v * self.weights[k] for k, v in terms.items()}

    @staticmethod
    def dn_indices(dn_meta: dict, targets: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed matching of positive denoising queries to their ground truth (gt index tiled per group)."""
        groups = dn_meta["dn_num_group"]
        out = []
        for t, pos in zip(targets, dn_meta["dn_positive_idx"], strict=True):
            n = len(t["labels"])
            gt_idx = torch.arange(n, dtype=torch.int64).repeat(groups)
            out.append((pos.cpu().long(), gt_idx))
        return out

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        device = outputs["pred_logits"].device
        with torch.autocast(device_type=device.type, enabled=False):
            num_boxes = self.num_boxes(targets, device)
            losses = {}
            indices = self.matcher(outputs, targets)
            losses.update(self.weighted(self.terms(outputs, targets, indices, num_boxes), ""))
            for i, aux in enumerate(outputs.get("aux_outputs", [])):
                indices = self.matcher(aux, targets)
                losses.update(self.weighted(self.terms(aux, targets, indices, num_boxes), f"_aux_{i}"))
            if "enc_outputs" in outputs:
                enc = outputs["enc_outputs"]
                indices = self.matcher(enc, targets)
                losses.update(self.weighted(self.terms(enc, targets, indices, num_boxes), "_enc"))
            if "dn_outputs" in outputs:
                meta = outputs["dn_meta"]
                indices = self.dn_indices(meta, targets)
                dn_boxes = num_boxes * meta["dn_num_group"]
                for i, dn in enumerate(outputs["dn_outputs"]):
                    losses.update(self.weighted(self.terms(dn, targets, indices, dn_boxes), f"_dn_{i}"))
        return losses
