"""Discrete sampling (the official v2 dsp models): one pixel per point, the offsets frozen in training."""

from __future__ import annotations

import torch
from rtdetr_testdata import make_shapes

from neo.models.rtdetr import build_preset
from neo.models.rtdetr.deformable_attention import deformable_attention_core, discrete_sample


def _pixel_by_loop(value: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
    """The dsp rule written out point by point: column int(x * W + 0.5), row int(y * H + 0.5) (truncation toward
    zero), each clamped into the map. value [N, D, H, W], locations [N, Q, P, 2] -> [N, D, Q, P]."""
    n, d, h, w = value.shape
    out = torch.empty(n, d, *locations.shape[1:3])
    for i in range(n):
        for q in range(locations.shape[1]):
            for p in range(locations.shape[2]):
                x, y = (float(v) for v in locations[i, q, p])
                col = min(max(int(x * w + 0.5), 0), w - 1)
                row = min(max(int(y * h + 0.5), 0), h - 1)
                out[i, :, q, p] = value[i, :, row, col]
    return out


def test_discrete_sample_takes_the_rounded_pixel_clamped_per_axis() -> None:
    g = torch.Generator().manual_seed(0)
    value = torch.randn(2, 3, 5, 9, generator=g)  # W != H: columns clamp to W - 1, rows to H - 1
    locations = torch.rand(2, 7, 4, 2, generator=g) * 1.6 - 0.3  # inside and outside the map
    locations[0, 0, 0] = torch.tensor([-0.05, 1.2])  # -0.45 + 0.5 truncates to column 0; row clamps to 4
    got = discrete_sample(value, locations)
    assert torch.equal(got, _pixel_by_loop(value, locations))
    assert torch.equal(got[0, :, 0, 0], value[0, :, 4, 0])


def test_discrete_attention_differs_from_bilinear_and_sums_the_gathered_pixels() -> None:
    g = torch.Generator().manual_seed(1)
    shapes = [(4, 6), (2, 3)]
    value = torch.randn(1, 4 * 6 + 2 * 3, 2, 3, generator=g)  # [B, S, heads, D]
    locations = torch.rand(1, 5, 2, 3, 2, generator=g)  # points per level [2, 1]
    weights = torch.rand(1, 5, 2, 3, generator=g).softmax(-1)
    discrete = deformable_attention_core(value, shapes, locations, weights, [2, 1], "discrete")
    bilinear = deformable_attention_core(value, shapes, locations, weights, [2, 1], "bilinear")
    assert not torch.allclose(discrete, bilinear, atol=1e-3)
    levels = value.split([24, 6], dim=1)
    expected = torch.zeros(1, 5, 2, 3)
    for head in range(2):
        for level, (index, (h, w)) in enumerate(zip(([0, 1], [2]), shapes, strict=True)):
            v = levels[level][0, :, head].T.reshape(1, 3, h, w)
            pixels = discrete_sample(v, locations[:, :, head, index])  # [1, D, Q, P_l]
            expected[0, :, head] += (pixels[0] * weights[0, :, head, index]).sum(-1).T
    assert torch.allclose(discrete, expected.reshape(1, 5, 6), atol=1e-6)


def test_dsp_trains_without_the_offset_projections() -> None:
    """Official R18 dsp: 20,036,432 of 20,184,464 parameters train (the sampling offsets are frozen)."""
    with torch.device("meta"):
        net = build_preset("rtdetr_r18", 80, {"net.decoder.sampling": "discrete"})[0]
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {f"decoder.decoder.layers.{i}.cross_attn.sampling_offsets.{p}" for i in range(3)
                      for p in ("weight", "bias")}
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert (trainable, sum(p.numel() for p in net.parameters())) == (20_036_432, 20_184_464)


def test_dsp_tiny_model_trains_end_to_end() -> None:
    torch.manual_seed(0)
    net, criterion, _ = build_preset("tiny", 3, {"net.decoder.sampling": "discrete"})
    net.train()
    images, targets = make_shapes(1, 144, 256)
    sum(criterion(net(images, targets), targets).values()).backward()
    attn = net.decoder.decoder.layers[0].cross_attn
    assert attn.sampling_offsets.weight.grad is None
    assert attn.attention_weights.weight.grad is not None and attn.value_proj.weight.grad.abs().sum() > 0
