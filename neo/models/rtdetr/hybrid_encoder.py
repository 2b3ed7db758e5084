"""Hybrid encoder: per-level projection, AIFI (transformer on the stride-32 map), CCFM (FPN + PAN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvNormLayer, get_activation
from .position import POSITION_EMBEDDINGS, sincos_2d_embedding
from .repvgg import CSPRepLayer, RepVggBlock


class TransformerEncoderLayer(nn.Module):
    """Post-norm transformer encoder layer (AIFI). src, pos: [B, L, C] -> [B, L, C]."""

    def __init__(
        self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.0, act: str = "gelu"
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.activation = get_activation(act)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = k = src + pos
        attn = self.self_attn(q, k, value=src, need_weights=False)[0]
        src = self.norm1(src + self.dropout(attn))
        ffn = self.linear2(self.dropout(self.activation(self.linear1(src))))
        return self.norm2(src + self.dropout(ffn))


class TransformerEncoder(nn.Module):
    """A stack of encoder layers (keys `layers.{i}.*`)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src, pos)
        return src


class HybridEncoder(nn.Module):
    """RT-DETR hybrid encoder.

    Args:
        in_channels: backbone channels per level (strides 8, 16, 32).
        hidden_dim: channels of every output level.
        use_encoder_idx: levels that get AIFI (officially [2], the stride-32 map).
        num_encoder_layers, num_heads, ffn_dim, dropout, enc_act: AIFI layer settings.
        expansion, depth_mult, act: CSPRep layer settings (3 RepVGG blocks x depth_mult).
        pe_temperature: sin-cos embedding temperature.
        position_embedding: ``consistent`` (each token its own position) or ``official`` (the upstream
            x-major layout, which differs when H != W; for official checkpoints' exact outputs).

    forward: list of [B, in_channels[i], H_i, W_i] -> list of [B, hidden_dim, H_i, W_i] (same sizes;
    any H_i, W_i: the top-down path upsamples to the lateral map's exact size).
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
            nn.Sequential(nn.Conv2d(c, hidden_dim, 1, bias=False), nn.BatchNorm2d(hidden_dim))
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
        self.lateral_convs = nn.ModuleList(
            ConvNormLayer(hidden_dim, hidden_dim, 1, 1, act=act) for _ in range(n - 1)
        )
        self.fpn_blocks = nn.ModuleList(
            CSPRepLayer(hidden_dim * 2, hidden_dim, blocks, expansion, act) for _ in range(n - 1)
        )
        self.downsample_convs = nn.ModuleList(
            ConvNormLayer(hidden_dim, hidden_dim, 3, 2, act=act) for _ in range(n - 1)
        )
        self.pan_blocks = nn.ModuleList(
            CSPRepLayer(hidden_dim * 2, hidden_dim, blocks, expansion, act) for _ in range(n - 1)
        )

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.in_channels):
            raise ValueError(f"HybridEncoder expects {len(self.in_channels)} feature maps, got {len(feats)}")
        proj = [layer(f) for layer, f in zip(self.input_proj, feats, strict=True)]
        for encoder, level in zip(self.encoder, self.use_encoder_idx, strict=True):
            b, c, h, w = proj[level].shape
            src = proj[level].flatten(2).transpose(1, 2)  # [B, H*W, C], row-major
            pos = sincos_2d_embedding(h, w, c, self.pe_temperature, src.device, src.dtype, self.position_embedding)
            proj[level] = (
                encoder(src, pos)
                .transpose(1, 2)
                .reshape(b, c, h, w)
                .contiguous(memory_format=_memory_format(proj[level]))
            )

        # top-down FPN: from the coarsest level to the finest
        n = len(proj)
        inner = [proj[-1]]
        for i, idx in enumerate(range(n - 1, 0, -1)):
            high = self.lateral_convs[i](inner[0])
            inner[0] = high
            low = proj[idx - 1]
            up = F.interpolate(high, size=low.shape[-2:], mode="nearest")
            inner.insert(0, self.fpn_blocks[i](torch.cat([up, low], dim=1)))

        # bottom-up PAN
        outs = [inner[0]]
        for i in range(n - 1):
            down = self.downsample_convs[i](outs[-1])
            high = inner[i + 1]
            if down.shape[-2:] != high.shape[-2:]:  # only for backbones with unusual rounding
                down = F.interpolate(down, size=high.shape[-2:], mode="nearest")
            outs.append(self.pan_blocks[i](torch.cat([down, high], dim=1)))
        return outs

    def deploy(self) -> None:
        """Fuse every RepVGG block (eval outputs unchanged)."""
        for m in self.modules():
            if isinstance(m, RepVggBlock):
                m.deploy()


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last
        if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1
        else (torch.contiguous_format)
    )
