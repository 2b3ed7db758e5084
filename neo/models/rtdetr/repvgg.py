"""RepVGG block and the CSPRep layer of the CCFM; `deploy()` fuses 3x3 + 1x1 branches into one conv."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvNormLayer, get_activation


def _fuse_conv_bn(layer: ConvNormLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias equivalent to conv -> BN (eval statistics)."""
    bn = layer.norm
    std = (bn.running_var + bn.eps).sqrt()
    kernel = layer.conv.weight * (bn.weight / std).reshape(-1, 1, 1, 1)
    bias = bn.bias - bn.running_mean * bn.weight / std
    return kernel, bias


class RepVggBlock(nn.Module):
    """act(BN(conv3x3(x)) + BN(conv1x1(x))); after `deploy()`: act(conv3x3'(x)).

    x: [B, C_in, H, W] -> [B, C_out, H, W]
    """

    def __init__(self, in_channels: int, out_channels: int, act: str = "silu") -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv1 = ConvNormLayer(in_channels, out_channels, 3, 1, padding=1)
        self.conv2 = ConvNormLayer(in_channels, out_channels, 1, 1, padding=0)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "conv"):
            return self.act(self.conv(x))
        return self.act(self.conv1(x) + self.conv2(x))

    @torch.no_grad()
    def deploy(self) -> None:
        """Replace the two branches by one 3x3 conv with bias (same eval output)."""
        if hasattr(self, "conv"):
            return
        k3, b3 = _fuse_conv_bn(self.conv1)
        k1, b1 = _fuse_conv_bn(self.conv2)
        self.conv = nn.Conv2d(self.in_channels, self.out_channels, 3, 1, padding=1).to(k3)
        self.conv.weight.copy_(k3 + F.pad(k1, [1, 1, 1, 1]))
        self.conv.bias.copy_(b3 + b1)
        del self.conv1, self.conv2


class CSPRepLayer(nn.Module):
    """CSP layer: conv3(bottlenecks(conv1(x)) + conv2(x)); conv3 is Identity when expansion = 1.

    x: [B, C_in, H, W] -> [B, C_out, H, W]
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int = 3,
        expansion: float = 1.0,
        act: str = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvNormLayer(in_channels, hidden, 1, 1, act=act)
        self.conv2 = ConvNormLayer(in_channels, hidden, 1, 1, act=act)
        self.bottlenecks = nn.Sequential(*[RepVggBlock(hidden, hidden, act=act) for _ in range(num_blocks)])
        self.conv3 = (
            ConvNormLayer(hidden, out_channels, 1, 1, act=act) if hidden != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))
