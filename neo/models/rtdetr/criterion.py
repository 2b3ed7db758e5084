"""SetCriterion: classification (VFL, or another by name) + L1 + GIoU on the final, auxiliary, encoder and
denoising outputs (in fp32)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, box_iou, generalized_box_iou

from neo.models.losses import check_classification, classification_loss

from .matcher import HungarianMatcher


class SetCriterion(nn.Module):
    """RT-DETR loss.

    Args:
        num_classes: C.
        matcher: a HungarianMatcher.
        classification: name in neo.models.losses.CLASSIFICATION_LOSSES: "vfl" (official), "mal" (DEIM);
            its term is "loss_<name>" (below: "loss_vfl").
        weight_class, weight_bbox, weight_giou: term weights (official 1, 5, 2).
        weight_vfl: the classification weight under its older name (the preset files use it); give one of
            the two, or both equal.
        alpha, gamma: classification loss parameters (official VFL 0.75, 2.0; DEIM's MAL 1.0, 1.5).

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
        classification: str = "vfl",
        weight_class: float | None = None,
        weight_bbox: float = 5.0,
        weight_giou: float = 2.0,
        alpha: float = 0.75,
        gamma: float = 2.0,
        weight_vfl: float | None = None,
    ) -> None:
        super().__init__()
        if weight_class is not None and weight_vfl is not None and weight_class != weight_vfl:
            raise ValueError(f"criterion weight_class={weight_class} and weight_vfl={weight_vfl} both set the "
                             f"classification weight: give one (weight_vfl is its older name)")
        self.num_classes = num_classes
        self.matcher = matcher if matcher is not None else HungarianMatcher()
        self.classification = check_classification(classification)
        self.class_name = f"loss_{classification}"
        weight = next((w for w in (weight_class, weight_vfl) if w is not None), 1.0)
        self.weights = {self.class_name: weight, "loss_bbox": weight_bbox, "loss_giou": weight_giou}
        self.alpha, self.gamma = alpha, gamma

    @staticmethod
    def num_boxes(targets: list[dict], device: torch.device) -> torch.Tensor:
        """Ground-truth count averaged over ranks (all-reduced when distributed), at least 1: a 0-dim fp32
        tensor on ``device``, filled there from the host count (no upload, no read back)."""
        n = torch.full((), float(sum(len(t["labels"]) for t in targets)), device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(n)
            n = n / dist.get_world_size()
        return n.clamp(min=1.0)

    def terms(
        self,
        out: dict,
        targets: list[dict],
        indices: list[tuple[torch.Tensor, torch.Tensor]],
        num_boxes: float | torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Unweighted classification, L1 and GIoU for one set of predictions matched by ``indices`` (B pairs pred/gt)."""
        device = out["pred_logits"].device
        gt_boxes, gt_labels = _concat_targets(targets, device)
        flat = _flat_indices(indices, [len(t["labels"]) for t in targets]).to(device)
        return self.matched_terms(out, gt_boxes, gt_labels, flat, num_boxes)

    def matched_terms(
        self,
        out: dict,
        gt_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
        flat: torch.Tensor,
        num_boxes: float | torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Unweighted classification, L1 and GIoU for one set of predictions.

        out: "pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4]; gt_boxes [N, 4] / gt_labels [N]: every image's
        ground truth concatenated; flat int64 [3, K] on the device: image, query and (concatenated) gt index
        of each of the K matched pairs.
        """
        logits = out["pred_logits"].float()  # [B, Q, C]
        pred_boxes = out["pred_boxes"].float()  # [B, Q, 4]
        batch_idx, src_idx, gt_idx = flat
        src = pred_boxes[batch_idx, src_idx]  # [K, 4]
        gt = gt_boxes[gt_idx].to(src)
        labels = gt_labels[gt_idx]

        src_xyxy, gt_xyxy = box_convert(src, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy")
        iou = torch.diag(box_iou(src_xyxy.detach(), gt_xyxy)) if len(src) else src.new_zeros(0)
        target_score = torch.zeros_like(logits)  # one-hot x IoU at matched (query, class)
        target_score[batch_idx, src_idx, labels] = iou.detach().nan_to_num(0.0).clamp(min=0.0)
        onehot = torch.zeros_like(logits)
        onehot[batch_idx, src_idx, labels] = 1.0
        loss_class = classification_loss(self.classification, logits, onehot, target_score, self.alpha, self.gamma,
                                         num_boxes)
        loss_bbox = F.l1_loss(src, gt, reduction="sum") / num_boxes
        giou = torch.diag(generalized_box_iou(src_xyxy, gt_xyxy)) if len(src) else src.new_zeros(0)
        loss_giou = (1 - giou).sum() / num_boxes
        return {self.class_name: loss_class, "loss_bbox": loss_bbox, "loss_giou": loss_giou}

    def weighted(self, terms: dict[str, torch.Tensor], suffix: str) -> dict[str, torch.Tensor]:
        return {f"{k}{suffix}": v * self.weights[k] for k, v in terms.items()}

    @staticmethod
    def dn_indices(dn_meta: dict, targets: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed matching of positive denoising queries to their ground truth (gt index tiled per group), on the host."""
        groups = dn_meta["dn_num_group"]
        out = []
        for t, pos in zip(targets, dn_meta["dn_positive_idx"], strict=True):
            n = len(t["labels"])
            gt_idx = torch.arange(n, dtype=torch.int64).repeat(groups)
            out.append((torch.as_tensor(pos, dtype=torch.int64, device="cpu"), gt_idx))
        return out

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        """All terms. The host work of a step is done in two moves: the matcher copies the cost matrices of
        every matched set to the host at once, and the index tensors of every set go back in one upload."""
        device = outputs["pred_logits"].device
        with torch.autocast(device_type=device.type, enabled=False):
            num_boxes = self.num_boxes(targets, device)
            sizes = [len(t["labels"]) for t in targets]
            gt_boxes, gt_labels = _concat_targets(targets, device)
            # (suffix, predictions, normaliser) of every set; the matcher sees all but the denoising ones at once
            matched = [("", outputs, num_boxes)]
            matched += [(f"_aux_{i}", aux, num_boxes) for i, aux in enumerate(outputs.get("aux_outputs", []))]
            if "enc_outputs" in outputs:
                matched.append(("_enc", outputs["enc_outputs"], num_boxes))
            indices = self.matcher.match_many([out for _, out, _ in matched], targets)
            sets = list(zip(matched, indices, strict=True))
            if "dn_outputs" in outputs:
                meta = outputs["dn_meta"]
                dn = self.dn_indices(meta, targets)
                dn_boxes = num_boxes * meta["dn_num_group"]
                sets += [((f"_dn_{i}", out, dn_boxes), dn) for i, out in enumerate(outputs["dn_outputs"])]
            flats = [_flat_indices(idx, sizes) for _, idx in sets]
            on_device = _upload(torch.cat(flats, dim=1), device).split([f.shape[1] for f in flats], dim=1)
            losses = {}
            for ((suffix, out, norm), _), flat in zip(sets, on_device, strict=True):
                losses.update(self.weighted(self.matched_terms(out, gt_boxes, gt_labels, flat, norm), suffix))
        return losses


def _concat_targets(targets: list[dict], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image's boxes [N, 4] and labels [N] concatenated, on ``device``."""
    boxes = torch.cat([t["boxes"].reshape(-1, 4) for t in targets]).to(device)
    labels = torch.cat([t["labels"].reshape(-1) for t in targets]).to(device)
    return boxes, labels


def _flat_indices(indices: list[tuple[torch.Tensor, torch.Tensor]], sizes: list[int]) -> torch.Tensor:
    """B host pairs (pred_idx [K_i], gt_idx [K_i]) -> host int64 [3, K]: image, query, concatenated gt index."""
    starts = [0]
    for n in sizes[:-1]:
        starts.append(starts[-1] + n)
    rows = [
        torch.stack([torch.full_like(src, i), src, dst + start])
        for i, ((src, dst), start) in enumerate(zip(indices, starts, strict=True))
    ]
    return torch.cat(rows, dim=1) if rows else torch.zeros(3, 0, dtype=torch.int64)


def _upload(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """One host -> device copy that does not wait for the device: from pinned memory, non-blocking, on CUDA."""
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device)
