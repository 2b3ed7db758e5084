"""D-FINE decoder layer: self-attention, projection-free deformable cross-attention, gated fusion, FFN."""

from __future__ import annotations

import math

import torch
from torch import nn

from neo.models.rtdetr.deformable_attention import deformable_attention_core
from neo.models.rtdetr.layers import bias_init_with_prob, get_activation


class DeformableSampling(nn.Module):
    """Multi-scale deformable attention without value/output projections (D-FINE's cross-attention).

    Args:
        dim: embedding size C; num_heads: heads (C // num_heads channels each);
        num_levels: memory levels; num_points: sampling points per level (int or a list per level).
        offset_scale: location = ref_xy + offset / points_l * ref_wh * offset_scale.

    forward(query [B, Q, C], reference_points [B, Q, 1, 4] (cxcywh in [0, 1]), value [B, S, C],
            spatial_shapes [(H_l, W_l)]) -> [B, Q, C]
    """

    def __init__(
        self,
        dim: int = 256,
        num_heads: int = 8,
        num_levels: int = 3,
        num_points: int | list[int] = 4,
        offset_scale: float = 0.5,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_points = [num_points] * num_levels if isinstance(num_points, int) else list(num_points)
        if len(self.num_points) != num_levels:
            raise ValueError(f"num_points={num_points} needs one entry per level ({num_levels})")
        self.dim, self.num_heads, self.offset_scale = dim, num_heads, offset_scale
        total = sum(self.num_points)
        self.sampling_offsets = nn.Linear(dim, num_heads * total * 2)
        self.attention_weights = nn.Linear(dim, num_heads * total)
        scale = torch.cat([torch.full((n,), 1.0 / n) for n in self.num_points])
        self.register_buffer("num_points_scale", scale, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Offsets start on rays (one direction per head, step k for point k); uniform attention."""
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        ray = torch.stack([thetas.cos(), thetas.sin()], -1)
        ray = ray / ray.abs().max(-1, keepdim=True).values
        step = torch.cat([torch.arange(1, n + 1, dtype=torch.float32) for n in self.num_points])
        with torch.no_grad():
            self.sampling_offsets.bias.copy_((ray[:, None, :] * step[None, :, None]).flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        value: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        b, q, _ = query.shape
        total = sum(self.num_points)
        value = value.reshape(b, value.shape[1], self.num_heads, self.dim // self.num_heads)
        offsets = self.sampling_offsets(query).reshape(b, q, self.num_heads, total, 2)
        weights = self.attention_weights(query).reshape(b, q, self.num_heads, total).softmax(-1)
        ref = reference_points[:, :, :1]  # [B, Q, 1, 4]: one box per query, shared by the levels
        scale = self.num_points_scale.to(offsets.dtype)[None, None, None, :, None]
        locations = ref[:, :, None, :, :2] + offsets * scale * ref[:, :, None, :, 2:] * self.offset_scale
        return deformable_attention_core(value, spatial_shapes, locations, weights, self.num_points)


class Gate(nn.Module):
    """Gated fusion of the residual stream and the cross-attention output.

    g1, g2 = sigmoid(Linear([x, y])) split in two; out = LayerNorm(g1 * x + g2 * y).
    x, y: [B, Q, C] -> [B, Q, C]. Starts as the plain average (zero weight, sigmoid(0) = 0.5).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * dim, 2 * dim)
        self.norm = nn.LayerNorm(dim)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, bias_init_with_prob(0.5))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g1, g2 = torch.sigmoid(self.gate(torch.cat([x, y], -1))).chunk(2, -1)
        return self.norm(g1 * x + g2 * y)


class DFINEDecoderLayer(nn.Module):
    """Self-attention -> add&LN -> deformable sampling -> gate -> FFN -> add&LN.

    tgt, query_pos: [B, Q, C]; reference_points: [B, Q, 1, 4]; memory: [B, S, C];
    attn_mask: [Q, Q] bool (True = may not attend) or None -> [B, Q, C]
    """

    def __init__(
        self,
        dim: int = 256,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        dropout: float = 0.0,
        act: str = "relu",
        num_levels: int = 3,
        num_points: int | list[int] = 4,
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout, batch_first=True)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = DeformableSampling(dim, num_heads, num_levels, num_points)
        self.dropout2 = nn.Dropout(dropout)
        self.gateway = Gate(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.activation = get_activation(act)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(dim)
        nn.init.xavier_uniform_(self.linear1.weight)
        nn.init.xavier_uniform_(self.linear2.weight)

    def forward(
        self,
        tgt: torch.Tensor,
        reference_points: torch.Tensor,
        memory: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        query_pos: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = k = tgt + query_pos
        attn = self.self_attn(q, k, value=tgt, attn_mask=attn_mask, need_weights=False)[0]
        tgt = self.norm1(tgt + self.dropout1(attn))
        cross = self.cross_attn(tgt + query_pos, reference_points, memory, spatial_shapes)
        tgt = self.gateway(tgt, self.dropout2(cross))
        ffn = self.linear2(self.dropout3(self.activation(self.linear1(tgt))))
        return self.norm3((tgt + self.dropout4(ffn)).clamp(-65504, 65504))
