"""FGL loss and the split of targets between two bins."""

import torch

from neo.models.dfine.fdr import weighting_function
from neo.models.dfine.losses import fgl_loss, split_target


def test_split_target_reconstructs_targets_inside_the_range():
    w = weighting_function(16, 0.5, 4.0)
    target = torch.linspace(-3.9, 3.9, 41)
    left, wl, wr = split_target(target, w)
    torch.testing.assert_close(wl * w[left] + wr * w[left + 1], target)
    assert torch.all((wl >= 0) & (wl <= 1))


def test_split_target_clamps_out_of_range_targets_to_the_ends():
    w = weighting_function(16, 0.5, 4.0)
    left, wl, wr = split_target(torch.tensor([-100.0, 100.0]), w)
    torch.testing.assert_close(wl * w[left] + wr * w[left + 1], torch.stack([w[0], w[-1]]))


def test_fgl_loss_is_lower_for_the_matching_distribution():
    w = weighting_function(16, 0.5, 4.0)
    target = torch.tensor([0.3, -1.2, 2.5])
    left, wl, wr = split_target(target, w)
    good = torch.full((3, 17), -20.0)
    good[torch.arange(3), left] = wl.log()
    good[torch.arange(3), left + 1] = wr.log()
    bad = torch.zeros(3, 17)
    assert fgl_loss(good, target, w) < fgl_loss(bad, target, w)
    weight = torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(fgl_loss(bad, target, w, weight), fgl_loss(bad[:1], target[:1], w))


def test_fgl_loss_gradient_flows():
    w = weighting_function(8, 0.5, 4.0)
    logits = torch.randn(5, 9, requires_grad=True)
    fgl_loss(logits, torch.randn(5), w).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
