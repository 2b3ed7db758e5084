"""D-FINE hybrid encoder: RT-DETR's AIFI + CCFM with GELAN fusion blocks and light downsampling.

Same shape and data path as :class:`neo.models.rtdetr.HybridEncoder` (per-level projection, AIFI on
the stride-32 map, top-down FPN then bottom-up PAN, any H x W); the fusion blocks are RepNCSPELAN4
(two CSP branches, outputs concatenated) and each PAN downsampling is SCDown (1x1 conv, then a
depthwise 3x3 stride-2 conv), as in the official D-FINE encoder.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from neo.models.rtdetr.hybrid_encoder import HybridEncoder
from neo.models.rtdetr.layers import ConvNormLayer
from neo.models.rtdetr.repvgg import CSPRepLayer


class DepthwiseConvNorm(ConvNormLayer):
    """Depthwise conv (groups = channels, no bias) -> BatchNorm2d. Keys `conv.weight`, `norm.*`.

    x: [B, C, H, W] -> [B, C, ceil(H / stride), ceil(W / stride)]
    """

    def __init__(self, channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(channels, channels, kernel_size, stride)
        pad = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(channels, channels, kernel_size, stride, pad, groups=channels, bias=False)


class SCDown(nn.Module):
    """Spatial-channel decoupled downsampling: 1x1 conv+BN (channels), depthwise kxk stride-s conv+BN (space).

    x: [B, C_in, H, W] -> [B, C_out, ceil(H / s), ceil(W / s)]
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.cv1 = ConvNormLayer(in_channels, out_channels, 1, 1)
        self.cv2 = DepthwiseConvNorm(out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv2(self.cv1(x))


class RepNCSPELAN4(nn.Module):
    """GELAN fusion block.

    cv1 (1x1) maps C_in to `mid` channels, split in two halves a, b; b goes through branch cv2
    (CSP layer of `num_blocks` RepVGG blocks + 3x3 conv, `branch` channels), whose output goes through
    cv3 (the same shape); cv4 (1x1) fuses [a, b, cv2, cv3] to C_out.

    x: [B, C_in, H, W] -> [B, C_out, H, W]
    """

    def __init__(
        self, in_channels: int, out_channels: int, mid: int, branch: int, num_blocks: int = 3, act: str = "silu"
    ) -> None:
        super().__init__()
        self.half = mid // 2
        self.cv1 = ConvNormLayer(in_channels, mid, 1, 1, act=act)
        self.cv2 = nn.Sequential(
            CSPRepLayer(mid // 2, branch, num_blocks, 1.0, act), ConvNormLayer(branch, branch, 3, 1, act=act)
        )
        self.cv3 = nn.Sequential(
            CSPRepLayer(branch, branch, num_blocks, 1.0, act), ConvNormLayer(branch, branch, 3, 1, act=act)
        )
        self.cv4 = ConvNormLayer(mid + 2 * branch, out_channels, 1, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).split((self.half, self.half), 1))
        parts.append(self.cv2(parts[-1]))
        parts.append(self.cv3(parts[-1]))
        return self.cv4(torch.cat(parts, 1))


class DFINEHybridEncoder(HybridEncoder):
    """RT-DETR's hybrid encoder (same data path, forward and any-size handling) with D-FINE's blocks:
    RepNCSPELAN4 fusion in the FPN and PAN, SCDown downsampling, lateral 1x1 convs without activation,
    input projections named `conv` / `norm` (official names).

    Args:
        in_channels: backbone channels per level (strides 8/16/32, or 16/32 for the N model).
        hidden_dim: channels of every output level.
        expansion: GELAN branch width = round(expansion * hidden_dim // 2).
        depth_mult: RepVGG blocks per CSP layer = round(3 * depth_mult).
        act: activation of the fusion blocks.
        **aifi: the AIFI and position-embedding settings of :class:`neo.models.rtdetr.HybridEncoder`, with its
            defaults (use_encoder_idx, num_encoder_layers, num_heads, ffn_dim, dropout, enc_act, pe_temperature,
            position_embedding).

    forward: list of [B, in_channels[i], H_i, W_i] -> list of [B, hidden_dim, H_i, W_i] (same sizes, any H_i, W_i).
    """

    def __init__(
        self,
        in_channels: list[int],
        hidden_dim: int = 256,
        *,
        expansion: float = 1.0,
        depth_mult: float = 1.0,
        act: str = "silu",
        **aifi: Any,
    ) -> None:
        super().__init__(in_channels, hidden_dim, expansion=expansion, depth_mult=depth_mult, act=act, **aifi)
        self.input_proj = nn.ModuleList(ConvNormLayer(c, hidden_dim, 1) for c in in_channels)
        n = len(in_channels)
        blocks = round(3 * depth_mult)
        branch = round(expansion * hidden_dim // 2)

        def fusion() -> RepNCSPELAN4:
            return RepNCSPELAN4(hidden_dim * 2, hidden_dim, hidden_dim * 2, branch, blocks, act)

        self.lateral_convs = nn.ModuleList(ConvNormLayer(hidden_dim, hidden_dim, 1, 1) for _ in range(n - 1))
        self.fpn_blocks = nn.ModuleList(fusion() for _ in range(n - 1))
        self.downsample_convs = nn.ModuleList(
            nn.Sequential(SCDown(hidden_dim, hidden_dim, 3, 2)) for _ in range(n - 1)
        )
        self.pan_blocks = nn.ModuleList(fusion() for _ in range(n - 1))
