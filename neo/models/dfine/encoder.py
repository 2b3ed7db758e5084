"""D-FINE hybrid encoder: RT-DETR's AIFI + CCFM with GELAN fusion blocks and light downsampling.

Same shape and data path as :class:`neo.models.rtdetr.HybridEncoder` (per-level projection, AIFI on
the stride-32 map, top-down FPN then bottom-up PAN, any H x W); the fusion blocks are RepNCSPELAN4
(two CSP branches, outputs concatenated) and each PAN downsampling is SCDown (1x1 conv, then a
depthwise 3x3 stride-2 conv), as in the official D-FINE encoder.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from neo.models.rtdetr.hybrid_encoder import TransformerEncoder, TransformerEncoderLayer
from neo.models.rtdetr.layers import ConvNormLayer
from neo.models.rtdetr.position import POSITION_EMBEDDINGS, position_embedding
from neo.models.rtdetr.repvgg import CSPRepLayer, RepVggBlock


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


class DFINEHybridEncoder(nn.Module):
    """D-FINE hybrid encoder.

    Args:
        in_channels: backbone channels per level (strides 8/16/32, or 16/32 for the N model).
        hidden_dim: channels of every output level.
        use_encoder_idx: levels that get AIFI (the coarsest one officially).
        num_encoder_layers, num_heads, ffn_dim, dropout, enc_act: AIFI layer settings.
        expansion: GELAN branch width = round(expansion * hidden_dim // 2).
        depth_mult: RepVGG blocks per CSP layer = round(3 * depth_mult).
        act: activation of the fusion blocks.
        pe_temperature, position_embedding: as in :class:`neo.models.rtdetr.HybridEncoder`.

    forward: list of [B, in_channels[i], H_i, W_i] -> list of [B, hidden_dim, H_i, W_i] (same sizes, any H_i, W_i).
    """

    def __init__(
        self,
        in_channels: list[int],
        hidden_dim: int = 256,
        use_encoder_idx: list[int] = (2,),
        num_encoder_layers: int = 1,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        dropout: float = 0.0,
        enc_act: str = "gelu",
        expansion: float = 1.0,
        depth_mult: float = 1.0,
        act: str = "silu",
        pe_temperature: float = 10000.0,
        position_embedding: str = "consistent",
    ) -> None:
        super().__init__()
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(f"position_embedding must be one of {POSITION_EMBEDDINGS}, got {position_embedding!r}")
        self.position_embedding = position_embedding
        self.in_channels = list(in_channels)
        self.hidden_dim = hidden_dim
        self.use_encoder_idx = list(use_encoder_idx)
        self.pe_temperature = pe_temperature
        self.out_channels = [hidden_dim] * len(in_channels)
        self.input_proj = nn.ModuleList(
            nn.Sequential(
                OrderedDict(conv=nn.Conv2d(c, hidden_dim, 1, bias=False), norm=nn.BatchNorm2d(hidden_dim))
            )
            for c in in_channels
        )
        self.encoder = nn.ModuleList(
            TransformerEncoder(
                [
                    TransformerEncoderLayer(hidden_dim, num_heads, ffn_dim, dropout, enc_act)
                    for _ in range(num_encoder_layers)
                ]
            )
            for _ in self.use_encoder_idx
        )
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

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.in_channels):
            raise ValueError(f"DFINEHybridEncoder expects {len(self.in_channels)} feature maps, got {len(feats)}")
        proj = [layer(f) for layer, f in zip(self.input_proj, feats, strict=True)]
        for encoder, level in zip(self.encoder, self.use_encoder_idx, strict=True):
            b, c, h, w = proj[level].shape
            src = proj[level].flatten(2).transpose(1, 2)  # [B, H*W, C], row-major
            pos = position_embedding(self.position_embedding, h, w, c, self.pe_temperature, src.device, src.dtype)
            proj[level] = encoder(src, pos).transpose(1, 2).reshape(b, c, h, w).contiguous()
        n = len(proj)
        inner = [proj[-1]]  # top-down FPN, coarsest level first
        for i, idx in enumerate(range(n - 1, 0, -1)):
            high = self.lateral_convs[i](inner[0])
            inner[0] = high
            low = proj[idx - 1]
            up = F.interpolate(high, size=low.shape[-2:], mode="nearest")
            inner.insert(0, self.fpn_blocks[i](torch.cat([up, low], dim=1)))
        outs = [inner[0]]  # bottom-up PAN
        for i in range(n - 1):
            down = self.downsample_convs[i](outs[-1])
            high = inner[i + 1]
            if down.shape[-2:] != high.shape[-2:]:
                down = F.interpolate(down, size=high.shape[-2:], mode="nearest")
            outs.append(self.pan_blocks[i](torch.cat([down, high], dim=1)))
        return outs

    def deploy(self) -> None:
        """Fuse every RepVGG block (eval outputs unchanged)."""
        for m in self.modules():
            if isinstance(m, RepVggBlock):
                m.deploy()
