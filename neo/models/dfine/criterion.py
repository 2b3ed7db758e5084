"""DFINECriterion: classification + L1 + GIoU + FGL + DDF on every decoder layer, the layer-0 box head,
the encoder proposals and the denoising queries (in fp32).

Matching follows D-FINE: the classification term of each prediction set uses that set's own Hungarian
matching; the box terms (L1, GIoU, FGL) use the union of the matchings of all sets ("GO" matching: for
each query, the ground truth it was matched to most often), normalised by the size of that union.
Denoising queries use their fixed matching. DDF distils the last layer's edge distributions into every
earlier layer (GO-LSD).
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, box_iou, generalized_box_iou

from neo.models.losses import check_classification, classification_loss
from neo.models.rtdetr.criterion import SetCriterion, _concat_targets, _flat_indices, _upload
from neo.models.rtdetr.matcher import HungarianMatcher

from .fdr import box_to_distance
from .losses import ddf_loss, fgl_loss

Indices = list[tuple[torch.Tensor, torch.Tensor]]


def go_indices(sets: list[Indices]) -> Indices:
    """Union of several matchings of the same batch: per image, each query keeps the ground truth it was
    matched to most often (ties: the smaller gt index). Host int64 pairs in (the matcher's), host pairs out;
    the pairs of every set and image are read in one go."""
    batch = len(sets[0])
    empty = torch.zeros(0, dtype=torch.int64)
    triples = [torch.stack([torch.full_like(rows, i), rows, cols]) for s in sets for i, (rows, cols) in enumerate(s)]
    counts = Counter(map(tuple, torch.cat(triples, dim=1).T.tolist())) if triples else Counter()
    best: list[dict[int, int]] = [{} for _ in range(batch)]
    for (image, row, col), _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        best[image].setdefault(row, col)
    return [
        (torch.tensor(sorted(b), dtype=torch.int64), torch.tensor([b[r] for r in sorted(b)], dtype=torch.int64))
        if b else (empty, empty)
        for b in best
    ]


class DFINECriterion(nn.Module):
    """D-FINE loss.

    Args:
        num_classes: C.
        matcher: a HungarianMatcher.
        classification: name in neo.models.losses.CLASSIFICATION_LOSSES ("vfl" officially, "mal" for DEIM);
            the term is "loss_<name>".
        weight_class, weight_bbox, weight_giou, weight_fgl, weight_ddf: term weights (official 1, 5, 2, 0.15, 1.5).
        alpha, gamma: classification loss parameters (official VFL 0.75, 2.0; DEIM's MAL 1.0, 1.5).
        ddf_temperature: distillation temperature (official 5).

    forward(outputs, targets) -> dict of weighted scalar terms, sum = total loss. Names (t = each term):
        "loss_t"            last decoder layer       "loss_t_aux_{i}"  layers i = 0..N-2
        "loss_t_pre"        layer 0's box head       "loss_t_enc"      encoder top-k proposals
        "loss_t_dn_{i}"     denoising, layers 0..N-1 "loss_t_dn_pre"   denoising, layer 0's box head
    FGL on every decoder-layer set, DDF on layers 0..N-2 (and the denoising ones). In eval mode (outputs
    with only "pred_logits"/"pred_boxes") the last layer's class, L1 and GIoU terms.
    """

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher | None = None,
        classification: str = "vfl",
        weight_class: float = 1.0,
        weight_bbox: float = 5.0,
        weight_giou: float = 2.0,
        weight_fgl: float = 0.15,
        weight_ddf: float = 1.5,
        alpha: float = 0.75,
        gamma: float = 2.0,
        ddf_temperature: float = 5.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher if matcher is not None else HungarianMatcher()
        self.classification = check_classification(classification)
        self.class_name = f"loss_{classification}"
        self.weights = {
            self.class_name: weight_class,
            "loss_bbox": weight_bbox,
            "loss_giou": weight_giou,
            "loss_fgl": weight_fgl,
            "loss_ddf": weight_ddf,
        }
        self.alpha, self.gamma, self.temperature = alpha, gamma, ddf_temperature

    def class_term(self, out: dict, gt_boxes, gt_labels, flat: torch.Tensor, num_boxes) -> torch.Tensor:
        """Classification loss of one set; flat int64 [3, K] (image, query, gt) of its own matching."""
        logits = out["pred_logits"].float()
        batch_idx, src_idx, gt_idx = flat
        src = out["pred_boxes"].float()[batch_idx, src_idx].detach()
        iou = _matched_iou(src, gt_boxes[gt_idx].float())
        labels = gt_labels[gt_idx]
        target = torch.zeros_like(logits)
        target[batch_idx, src_idx, labels] = iou.nan_to_num(0.0).clamp(min=0.0)
        onehot = torch.zeros_like(logits)
        onehot[batch_idx, src_idx, labels] = 1.0
        return classification_loss(self.classification, logits, onehot, target, self.alpha, self.gamma, num_boxes)

    def box_terms(
        self,
        out: dict,
        gt_boxes: torch.Tensor,
        flat: torch.Tensor,
        num_boxes,
        project: torch.Tensor | None,
        reg_scale: float,
        teacher: dict | None,
        balance: tuple[float, float],
    ) -> dict[str, torch.Tensor]:
        """L1 + GIoU, and with "pred_corners" FGL, and with a teacher DDF, for one set.

        flat: int64 [3, K] (image, query, gt) of the box matching; teacher: the last layer's
        {"pred_corners", "pred_logits"}; balance: (num_pos, num_neg) of the DDF.
        """
        batch_idx, src_idx, gt_idx = flat
        src = out["pred_boxes"].float()[batch_idx, src_idx]  # [K, 4]
        gt = gt_boxes[gt_idx].float()
        src_xyxy, gt_xyxy = box_convert(src, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy")
        giou = torch.diag(generalized_box_iou(src_xyxy, gt_xyxy)) if len(src) else src.new_zeros(0)
        terms = {
            "loss_bbox": F.l1_loss(src, gt, reduction="sum") / num_boxes,
            "loss_giou": (1 - giou).sum() / num_boxes,
        }
        if "pred_corners" not in out or project is None:
            return terms
        bins = project.numel()
        iou = _matched_iou(src.detach(), gt)  # [K]
        corners = out["pred_corners"].float()
        refs = out["ref_points"].float()[batch_idx, src_idx].detach()
        target = box_to_distance(refs, gt_xyxy, reg_scale)  # [K, 4]
        terms["loss_fgl"] = fgl_loss(
            corners[batch_idx, src_idx].reshape(-1, bins),
            target.reshape(-1),
            project,
            weight=iou.repeat_interleave(4),
            avg_factor=num_boxes,
        )
        if teacher is not None:
            weight = teacher["pred_logits"].detach().float().sigmoid().max(-1).values  # [B, Q]
            weight = weight.index_put((batch_idx, src_idx), iou.to(weight.dtype))
            positive = torch.zeros_like(weight, dtype=torch.bool).index_put(
                (batch_idx, src_idx), torch.ones_like(iou, dtype=torch.bool)
            )
            terms["loss_ddf"] = ddf_loss(
                corners.reshape(-1, bins),
                teacher["pred_corners"].float().reshape(-1, bins),
                weight.repeat_interleave(4, dim=-1).reshape(-1),
                positive.repeat_interleave(4, dim=-1).reshape(-1),
                *balance,
                temperature=self.temperature,
            )
        return terms

    def weighted(self, terms: dict[str, torch.Tensor], suffix: str) -> dict[str, torch.Tensor]:
        return {f"{k}{suffix}": v * self.weights[k] for k, v in terms.items()}

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        device = outputs["pred_logits"].device
        with torch.autocast(device_type=device.type, enabled=False):
            num_boxes = SetCriterion.num_boxes(targets, device)
            sizes = [len(t["labels"]) for t in targets]
            gt_boxes, gt_labels = _concat_targets(targets, device)
            project, reg_scale = outputs.get("project"), float(outputs.get("reg_scale", 0.0))
            aux = outputs.get("aux_outputs", [])
            # (suffix, predictions, teacher) of every matched set; the matcher sees them all at once
            matched = [("", outputs, None)] + [(f"_aux_{i}", a, outputs) for i, a in enumerate(aux)]
            if "pre_outputs" in outputs:
                matched.append(("_pre", outputs["pre_outputs"], None))
            if "enc_outputs" in outputs:
                matched.append(("_enc", outputs["enc_outputs"], None))
            indices = self.matcher.match_many([out for _, out, _ in matched], targets)
            if len(matched) > 1:
                go = go_indices(indices)
                num_go = _mean_over_ranks(sum(len(rows) for rows, _ in go), device)
            else:
                go, num_go = indices[0], num_boxes
            b, q = outputs["pred_logits"].shape[:2]
            scale = 8.0 / b  # official: the DDF balance does not depend on the batch size per device
            npos = 4 * sum(len(rows) for rows, _ in go)
            balance = ((npos * scale) ** 0.5, ((4 * b * q - npos) * scale) ** 0.5)
            # (suffix, predictions, teacher, class matching, class normaliser, box matching, box normaliser)
            sets = [(s, out, t, idx, num_boxes, go, num_go) for (s, out, t), idx in zip(matched, indices, strict=True)]
            if "dn_outputs" in outputs:
                meta = outputs["dn_meta"]
                dn = SetCriterion.dn_indices(meta, targets)
                dn_boxes = num_boxes * meta["dn_num_group"]
                layers = outputs["dn_outputs"]
                sets += [
                    (f"_dn_{i}", out, layers[-1] if i < len(layers) - 1 else None, dn, dn_boxes, dn, dn_boxes)
                    for i, out in enumerate(layers)
                ]
                if "dn_pre_outputs" in outputs:
                    sets.append(("_dn_pre", outputs["dn_pre_outputs"], None, dn, dn_boxes, dn, dn_boxes))
            flats = [_flat_indices(s[3], sizes) for s in sets] + [_flat_indices(s[5], sizes) for s in sets]
            on_device = _upload(torch.cat(flats, dim=1), device).split([f.shape[1] for f in flats], dim=1)
            class_flats, box_flats = on_device[: len(sets)], on_device[len(sets):]
            losses = {}
            for (suffix, out, teacher, _, class_norm, _, box_norm), cf, bf in zip(
                sets, class_flats, box_flats, strict=True
            ):
                terms = {self.class_name: self.class_term(out, gt_boxes, gt_labels, cf, class_norm)}
                terms.update(self.box_terms(out, gt_boxes, bf, box_norm, project, reg_scale, teacher, balance))
                losses.update(self.weighted(terms, suffix))
        return losses


def _matched_iou(src: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of K matched pairs: src, gt [K, 4] cxcywh -> [K] (detached)."""
    if not len(src):
        return src.new_zeros(0)
    return torch.diag(box_iou(box_convert(src, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy"))).detach()


def _mean_over_ranks(count: int, device: torch.device) -> torch.Tensor:
    """A host count averaged over ranks (all-reduced when distributed), at least 1: a 0-dim fp32 tensor."""
    n = torch.full((), float(count), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(n)
        n = n / dist.get_world_size()
    return n.clamp(min=1.0)
