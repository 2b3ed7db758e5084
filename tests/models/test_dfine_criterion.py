"""D-FINE criterion: GO matching, term names, FGL/DDF behaviour, classification loss by name."""

from __future__ import annotations

import pytest
import torch

from neo.models.dfine.criterion import DFINECriterion, go_indices
from neo.models.dfine.decoder import DFINEDecoder
from neo.models.dfine.fdr import distance_to_box, integral, weighting_function
from neo.models.dfine.losses import ddf_loss
from neo.models.losses import CLASSIFICATION_LOSSES

C = 3


def _targets():
    return [
        {"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1]])},
        {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.6, 0.4, 0.3, 0.2]])},
    ]


def _outputs(num_layers: int = 3, denoising: int = 10):
    torch.manual_seed(0)
    dec = DFINEDecoder(num_classes=C, feat_channels=[32, 32], hidden_dim=32, num_queries=20, num_layers=num_layers,
                       num_heads=4, ffn_dim=64, num_points=4, num_denoising=denoising, reg_max=8).train()
    feats = [torch.randn(2, 32, 5, 8), torch.randn(2, 32, 3, 4)]
    return dec, dec(feats, _targets())


def _pairs(*pairs):
    return (torch.tensor([p[0] for p in pairs], dtype=torch.int64), torch.tensor([p[1] for p in pairs], dtype=torch.int64))


def test_go_indices_keep_each_querys_most_frequent_ground_truth():
    sets = [
        [_pairs((3, 0), (5, 1)), _pairs((2, 0))],
        [_pairs((3, 0), (7, 1)), _pairs((2, 0))],
        [_pairs((3, 1), (5, 0)), _pairs()],
    ]
    go = go_indices(sets)
    assert go[0][0].tolist() == [3, 5, 7] and go[0][1].tolist() == [0, 0, 1]  # 5: a tie, the smaller gt
    assert go[1][0].tolist() == [2] and go[1][1].tolist() == [0]


def test_term_names_cover_every_set():
    _, out = _outputs(num_layers=3)
    losses = DFINECriterion(C)(out, _targets())
    sets = ["", "_aux_0", "_aux_1", "_pre", "_enc", "_dn_0", "_dn_1", "_dn_2", "_dn_pre"]
    expected = {f"loss_{t}{s}" for t in ("vfl", "bbox", "giou") for s in sets}
    expected |= {f"loss_fgl{s}" for s in ["", "_aux_0", "_aux_1", "_dn_0", "_dn_1", "_dn_2"]}
    expected |= {f"loss_ddf{s}" for s in ["_aux_0", "_aux_1", "_dn_0", "_dn_1"]}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    total = sum(losses.values())
    total.backward()


def test_ddf_vanishes_when_earlier_layers_already_agree_with_the_last():
    """Fresh heads: every layer's distributions equal the last one's (zero residuals), so the KL is 0."""
    _, out = _outputs()
    losses = DFINECriterion(C)(out, _targets())
    for name in ("loss_ddf_aux_0", "loss_ddf_aux_1", "loss_ddf_dn_0"):
        assert losses[name].abs().item() < 1e-6
    assert losses["loss_fgl"].item() > 0


def test_ddf_balances_matched_and_unmatched_edges():
    student = torch.randn(8, 9)
    teacher = torch.randn(8, 9)
    weight = torch.ones(8)
    positive = torch.tensor([True] * 4 + [False] * 4)
    only_pos = ddf_loss(student, teacher, weight, positive, 1.0, 0.0)
    only_neg = ddf_loss(student, teacher, weight, positive, 0.0, 1.0)
    both = ddf_loss(student, teacher, weight, positive, 1.0, 3.0)
    torch.testing.assert_close(both, (only_pos + 3 * only_neg) / 4)
    assert only_pos.item() > 0 and only_neg.item() > 0
    torch.testing.assert_close(ddf_loss(teacher, teacher, weight, positive, 1.0, 1.0), torch.tensor(0.0))


def test_fgl_falls_as_the_distributions_move_to_the_targets():
    targets = _targets()
    project = weighting_function(8, 0.5, 4.0)
    ref = torch.tensor([0.45, 0.45, 0.25, 0.25]).expand(2, 20, 4)
    corners = torch.zeros(2, 20, 36, requires_grad=True)
    crit = DFINECriterion(C)
    opt = torch.optim.SGD([corners], lr=20.0)
    history, l1 = [], []
    for _ in range(30):
        boxes = distance_to_box(ref, integral(corners, project), 4.0)
        out = {"pred_logits": torch.zeros(2, 20, C), "pred_boxes": boxes, "pred_corners": corners,
               "ref_points": ref, "project": project, "reg_scale": 4.0}
        losses = crit(out, targets)
        loss = losses["loss_fgl"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
        l1.append(losses["loss_bbox"].item())
    # the cross-entropy to two neighbouring bins has a floor above 0; the expected edges reach the boxes
    assert history[-1] < 0.6 * history[0], history[::5]
    assert l1[-1] < 0.7 * l1[0], l1[::5]


def test_eval_outputs_give_the_last_layer_terms_only():
    _, out = _outputs()
    losses = DFINECriterion(C)({"pred_logits": out["pred_logits"], "pred_boxes": out["pred_boxes"]}, _targets())
    assert set(losses) == {"loss_vfl", "loss_bbox", "loss_giou"}


def test_classification_loss_is_chosen_by_name():
    _, out = _outputs()
    losses = DFINECriterion(C, classification="focal")(out, _targets())
    assert "loss_focal" in losses and "loss_vfl" not in losses
    assert set(CLASSIFICATION_LOSSES) >= {"vfl", "mal", "focal"}
    with pytest.raises(ValueError, match="classification"):
        DFINECriterion(C, classification="nope")


def test_perfect_boxes_give_zero_box_terms():
    targets = _targets()
    _, out = _outputs(denoising=0)
    boxes = out["pred_boxes"].detach().clone()
    boxes[0, :2] = targets[0]["boxes"]
    boxes[1, :1] = targets[1]["boxes"]
    logits = torch.full_like(out["pred_logits"], -10.0)
    logits[0, 0, 0] = logits[0, 1, 2] = logits[1, 0, 1] = 10.0
    losses = DFINECriterion(C)({"pred_logits": logits, "pred_boxes": boxes}, targets)
    assert losses["loss_bbox"].item() < 1e-6 and losses["loss_giou"].item() < 1e-5
