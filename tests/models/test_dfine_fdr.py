"""FDR math: weighting function, integral, distance <-> box conversions."""

import pytest
import torch

from neo.models.dfine.fdr import box_to_distance, distance_to_box, integral, weighting_function


def test_weighting_function_shape_order_and_symmetry():
    w = weighting_function(32, 0.5, 4.0)
    assert w.shape == (33,)
    assert torch.all(w[1:] > w[:-1])
    assert w[16] == 0
    torch.testing.assert_close(w, -w.flip(0))
    assert w[0].item() == pytest.approx(-4.0) and w[-1].item() == pytest.approx(4.0)
    # the inner bins reach the bound |up * reg_scale| one step before the ends
    assert w[-2].item() == pytest.approx(2.0)


def test_weighting_function_rejects_odd_reg_max():
    with pytest.raises(ValueError, match="reg_max"):
        weighting_function(7, 0.5, 4.0)


def test_integral_of_one_hot_logits_picks_the_bin_value():
    w = weighting_function(8, 0.5, 4.0)
    logits = torch.full((2, 4 * 9), -1e4)
    picks = torch.tensor([[0, 3, 4, 8], [1, 5, 7, 2]])
    for row in range(2):
        for edge in range(4):
            logits[row, edge * 9 + picks[row, edge]] = 0.0
    torch.testing.assert_close(integral(logits, w), w[picks])


def test_uniform_logits_integrate_to_zero():
    w = weighting_function(16, 0.5, 4.0)
    assert integral(torch.zeros(3, 5, 4 * 17), w).abs().max() < 1e-6


def test_zero_distance_keeps_the_reference_box():
    points = torch.tensor([[0.5, 0.4, 0.2, 0.3], [0.1, 0.9, 0.05, 0.1]])
    torch.testing.assert_close(distance_to_box(points, torch.zeros(2, 4), 4.0), points)


def test_box_distance_round_trip():
    g = torch.Generator().manual_seed(0)
    points = torch.cat([torch.rand(6, 2, generator=g), 0.1 + torch.rand(6, 2, generator=g) * 0.3], 1)
    distance = torch.randn(6, 4, generator=g)
    boxes = distance_to_box(points, distance, 4.0)
    xyxy = torch.cat([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)
    torch.testing.assert_close(box_to_distance(points, xyxy, 4.0), distance, atol=1e-5, rtol=1e-5)


def test_localization_quality_starts_as_identity_and_learns():
    from neo.models.dfine.fdr import LocalizationQuality

    lqe = LocalizationQuality(reg_max=8, k=4)
    scores, corners = torch.randn(2, 5, 3), torch.randn(2, 5, 4 * 9)
    out = lqe(scores, corners)
    assert out.shape == (2, 5, 3)
    torch.testing.assert_close(out, scores)
    out.sum().backward()
    assert lqe.mlp[-1].weight.grad.abs().sum() > 0
