"""Small building blocks shared by the RT-DETR modules: conv+norm, MLP, activations, inverse sigmoid."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d


def get_activation(name: str | None) -> nn.Module:
    """Map an activation name ("relu", "silu", "gelu", None) to a fresh module."""
    if name is None:
        return nn.Identity()
    table = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(table)} or null")
    return table[name]()


class ConvNormLayer(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> activation. Keys: `conv.weight`, `norm.*` (official names).

    A FrozenBatchNorm2d norm is folded into the conv weights at run time when ``fold_frozen_norm`` is True
    (faster; equal up to float rounding); False runs conv then norm, the official order, for exact outputs.

    x: [B, C_in, H, W] -> [B, C_out, ceil(H / stride), ceil(W / stride)] ("same" padding).
    """

    fold_frozen_norm = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        act: str | None = None,
        padding: int | None = None,
    ) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold_frozen_norm and isinstance(self.norm, FrozenBatchNorm2d):
            # frozen statistics: fold the norm into the conv (one pass over the output instead of two)
            norm = self.norm
            scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
            shift = norm.bias - norm.running_mean * scale
            conv = self.conv
            weight = conv.weight * scale.reshape(-1, 1, 1, 1)
            return self.act(F.conv2d(x, weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups))
        return self.act(self.norm(self.conv(x)))


class MLP(nn.Module):
    """`num_layers` Linear layers with ReLU between them. Keys: `layers.{i}.weight/bias`.

    x: [..., in_dim] -> [..., out_dim]
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """logit(x) with x clamped to [0, 1] and both terms to >= eps (official formula)."""
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


def bias_init_with_prob(prior_prob: float = 0.01) -> float:
    """Bias giving sigmoid(bias) = prior_prob: -log((1 - p) / p)."""
    return -math.log((1.0 - prior_prob) / prior_prob)
