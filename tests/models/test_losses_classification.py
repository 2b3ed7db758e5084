"""Classification losses by name: VFL, MAL and focal against their formulas written out here, finite gradients,
and the RT-DETR criterion's VFL term unchanged (computed here from the formula, term by term)."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from neo.models.dfine.criterion import DFINECriterion
from neo.models.losses import (
    CLASSIFICATION_LOSSES,
    classification_loss,
    focal,
    matchability_aware_loss,
    varifocal,
)
from neo.models.rtdetr.criterion import SetCriterion

# one image, two queries, two classes: query 0 matched to class 1 with IoU 0.64, query 1 unmatched
LOGITS = [[[0.5, -1.0], [2.0, 0.25]]]
ONEHOT = [[[0.0, 1.0], [0.0, 0.0]]]
IOU = [[[0.0, 0.64], [0.0, 0.0]]]


def _tensors():
    return (torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True), torch.tensor(ONEHOT, dtype=torch.float64),
            torch.tensor(IOU, dtype=torch.float64))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _bce(x: float, t: float) -> float:
    """Binary cross-entropy of logit x against target t, written out."""
    p = _sigmoid(x)
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def _expected(weight_and_target) -> list[list[list[float]]]:
    """Per-element weight(x, onehot, iou) * BCE(x, target(x, onehot, iou)) over the small case."""
    out = []
    for x_row, o_row, q_row in zip(LOGITS[0], ONEHOT[0], IOU[0], strict=True):
        row = []
        for x, o, q in zip(x_row, o_row, q_row, strict=True):
            weight, target = weight_and_target(x, o, q)
            row.append(weight * _bce(x, target))
        out.append(row)
    return [out]


def test_varifocal_is_iou_weighted_bce_to_the_iou():
    alpha, gamma = 0.75, 2.0
    logits, onehot, iou = _tensors()
    got = varifocal(logits, onehot, iou, alpha, gamma)
    want = _expected(lambda x, o, q: (q if o else alpha * _sigmoid(x) ** gamma, q))
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))


def test_mal_targets_iou_to_the_gamma_and_weighs_positives_one():
    alpha, gamma = 1.0, 1.5
    logits, onehot, iou = _tensors()
    got = matchability_aware_loss(logits, onehot, iou, alpha, gamma)
    want = _expected(lambda x, o, q: (1.0 if o else alpha * _sigmoid(x) ** gamma, q**gamma if o else 0.0))
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
    # the positive's target 0.64^1.5 = 0.512; a weaker alpha scales only the negatives
    half = matchability_aware_loss(logits, onehot, iou, 0.5, gamma)
    assert half[0, 0, 1] == got[0, 0, 1]
    torch.testing.assert_close(half[0, 1], got[0, 1] / 2)


def test_focal_equals_torchvision():
    logits, onehot, iou = _tensors()
    got = focal(logits, onehot, iou, 0.25, 2.0)
    torch.testing.assert_close(got, sigmoid_focal_loss(logits, onehot, 0.25, 2.0, reduction="none"))


@pytest.mark.parametrize("name", sorted(CLASSIFICATION_LOSSES))
def test_every_loss_has_finite_gradients_reaching_only_the_logits(name):
    logits = torch.randn(2, 5, 4, requires_grad=True)
    onehot = torch.zeros(2, 5, 4)
    onehot[0, 1, 2] = onehot[1, 3, 0] = 1.0
    iou = onehot * torch.tensor(0.0)  # a matched pair with IoU 0 (MAL: 0^gamma) must stay finite
    iou[1, 3, 0] = 0.7
    loss = classification_loss(name, logits, onehot, iou, 0.75, 1.5, num_boxes=2.0)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_classification_loss_reduces_as_the_detr_criteria():
    logits, onehot, iou = _tensors()
    per = varifocal(logits, onehot, iou, 0.75, 2.0)
    q = per.shape[1]
    expected = sum(per[0, :, c].sum() / q for c in range(2)) * q / 3.0  # mean over queries, sum, x Q, / boxes
    torch.testing.assert_close(classification_loss("vfl", logits, onehot, iou, 0.75, 2.0, 3.0), expected)


def _case():
    """Predictions of 2 images x 3 queries x 2 classes, 2 ground-truth boxes, and the matching used."""
    g = torch.Generator().manual_seed(7)
    out = {"pred_logits": torch.randn(2, 3, 2, generator=g),
           "pred_boxes": torch.tensor([[[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.2], [0.5, 0.5, 0.1, 0.1]],
                                       [[0.52, 0.42, 0.1, 0.3], [0.2, 0.8, 0.1, 0.1], [0.9, 0.1, 0.1, 0.1]]])}
    targets = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.32, 0.28, 0.2, 0.25]])},
               {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.4, 0.1, 0.3]])}]
    indices = [(torch.tensor([0]), torch.tensor([0])), (torch.tensor([0]), torch.tensor([0]))]
    return out, targets, indices


def _iou_cxcywh(a: list[float], b: list[float]) -> float:
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _rtdetr_vfl_by_hand(alpha: float = 0.75, gamma: float = 2.0) -> float:
    """RT-DETR's VFL term of ``_case`` from the formula alone: sum over images, classes, queries of
    weight * BCE, divided by Q (the mean over queries), times Q, over the 2 boxes."""
    out, targets, _ = _case()
    logits, boxes = out["pred_logits"].tolist(), out["pred_boxes"].tolist()
    total = 0.0
    for b in range(2):
        label, gt = int(targets[b]["labels"][0]), targets[b]["boxes"][0].tolist()
        for q in range(3):
            for c in range(2):
                x = logits[b][q][c]
                if q == 0 and c == label:
                    iou = _iou_cxcywh(boxes[b][0], gt)
                    total += iou * _bce(x, iou)
                else:
                    total += alpha * _sigmoid(x) ** gamma * _bce(x, 0.0)
    return total / 3 * 3 / 2


def test_rtdetr_criterion_vfl_numbers_are_unchanged():
    out, targets, indices = _case()
    terms = SetCriterion(2).terms(out, targets, indices, 2.0)
    assert set(terms) == {"loss_vfl", "loss_bbox", "loss_giou"}
    assert terms["loss_vfl"].item() == pytest.approx(_rtdetr_vfl_by_hand(), rel=1e-5)


def test_rtdetr_criterion_takes_mal_by_name_with_the_preset_weight():
    out, targets, indices = _case()
    vfl = SetCriterion(2, weight_vfl=2.0)
    mal = SetCriterion(2, classification="mal", weight_vfl=2.0, alpha=1.0, gamma=1.5)
    terms = mal.terms(out, targets, indices, 2.0)
    assert set(terms) == {"loss_mal", "loss_bbox", "loss_giou"}
    logits, onehot, iou = out["pred_logits"], torch.zeros(2, 3, 2), torch.zeros(2, 3, 2)
    for b in range(2):
        label = int(targets[b]["labels"][0])
        onehot[b, 0, label] = 1.0
        iou[b, 0, label] = _iou_cxcywh(out["pred_boxes"][b, 0].tolist(), targets[b]["boxes"][0].tolist())
    want = classification_loss("mal", logits, onehot, iou, 1.0, 1.5, 2.0)
    torch.testing.assert_close(terms["loss_mal"], want)
    assert mal.weights["loss_mal"] == vfl.weights["loss_vfl"] == 2.0
    torch.testing.assert_close(terms["loss_bbox"], vfl.terms(out, targets, indices, 2.0)["loss_bbox"])
    assert SetCriterion(2, classification="mal", weight_class=3.0).weights["loss_mal"] == 3.0
    full = mal(out, targets)
    assert "loss_mal" in full and not any(k.startswith("loss_vfl") for k in full)


def test_criteria_name_a_bad_classification_and_conflicting_weights():
    with pytest.raises(ValueError, match=r"classification='vfI'.*\['focal', 'mal', 'vfl'\]"):
        SetCriterion(2, classification="vfI")
    with pytest.raises(ValueError, match="classification='nope'"):
        DFINECriterion(2, classification="nope")
    with pytest.raises(ValueError, match="weight_class=2.0 and weight_vfl=1.0"):
        SetCriterion(2, weight_class=2.0, weight_vfl=1.0)


def test_dfine_criterion_takes_mal_by_name_and_keeps_its_box_terms():
    out, targets, _ = _case()
    vfl = DFINECriterion(2)(out, targets)
    mal = DFINECriterion(2, classification="mal", alpha=1.0, gamma=1.5)(out, targets)
    assert set(mal) == {k.replace("vfl", "mal") for k in vfl}
    for key in ("loss_bbox", "loss_giou"):
        torch.testing.assert_close(mal[key], vfl[key])
    assert torch.isfinite(mal["loss_mal"]) and mal["loss_mal"] != vfl["loss_vfl"]
