"""D-FINE decoder layer: self-attention, projection-free deformable cross-attention, gated fusion, FFN."""

from __future__ import annotations

import torch
from torch import nn

from neo.models.rtdetr.decoder import TransformerDecoderLayer
from neo.models.rtdetr.deformable_attention import MSDeformableAttention
from neo.models.rtdetr.layers import bias_init_with_prob


class DeformableSampling(MSDeformableAttention):
    """RT-DETR's multi-scale deformable attention without its value and output projections: D-FINE samples the
    memory as it is (keys `sampling_offsets.*`, `attention_weights.*` only).

    forward(query [B, Q, C], reference_points [B, Q, 1, 4] (cxcywh in [0, 1]), value [B, S, C],
            spatial_shapes [(H_l, W_l)]) -> [B, Q, C]
    """

    def __init__(self, dim: int, num_heads: int, num_levels: int, num_points: int | list[int]) -> None:
        super().__init__(dim, num_heads, num_levels, num_points)  # offsets on rays, uniform weights
        self.value_proj, self.output_proj = nn.Identity(), nn.Identity()  # (reset_parameters: at construction only)


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


class DFINEDecoderLayer(TransformerDecoderLayer):
    """RT-DETR's decoder layer with D-FINE's changes: the cross-attention samples the memory without
    projections, and a gate (instead of add & LayerNorm) merges its output into the residual stream.

    Self-attention -> add&LN -> deformable sampling -> gate -> FFN -> add&LN.
    tgt, query_pos: [B, Q, C]; reference_points: [B, Q, 1, 4]; memory: [B, S, C];
    attn_mask: [Q, Q] bool (True = may not attend) or None -> [B, Q, C]
    """

    ffn_clamp = 65504.0  # the FFN sum stays within float16's range, as officially

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
        super().__init__(dim, num_heads, ffn_dim, dropout, act, num_levels, num_points)
        self.cross_attn = DeformableSampling(dim, num_heads, num_levels, num_points)
        self.gateway = Gate(dim)
        del self.norm2
        nn.init.xavier_uniform_(self.linear1.weight)
        nn.init.xavier_uniform_(self.linear2.weight)

    def merge_cross(self, tgt: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
        """Residual stream [B, Q, C] and cross-attention output [B, Q, C] -> [B, Q, C]: the gate."""
        return self.gateway(tgt, cross)
