"""Multi-scale deformable attention: bilinear sampling on `grid_sample` (zero padding, align_corners=False),
or discrete sampling (the official v2 `dsp` models: each location rounded to one pixel and gathered)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SAMPLING = ("bilinear", "discrete")


def discrete_sample(value: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
    """Gather one pixel per location: column trunc(x * W + 0.5), row trunc(y * H + 0.5), clamped into the map.

    This is the official v2 ``discrete`` rule (rounding half up for locations inside the map; truncation
    toward zero, so -1/W < x < 0 also gives column 0). The official code clamps both coordinates to H - 1,
    which only equals this per-axis clamp on square maps (it mis-clamps columns when W != H).

    value: [N, D, H, W]; locations: [N, Q, P, 2] in [0, 1] (x, y) -> [N, D, Q, P] (no gradient to locations)
    """
    n, d, h, w = value.shape
    q, p = locations.shape[1:3]
    size = torch.tensor([w, h], device=locations.device)
    cells = (locations * size + 0.5).to(torch.int64)  # [N, Q, P, 2]
    col = cells[..., 0].clamp(0, w - 1)
    row = cells[..., 1].clamp(0, h - 1)
    index = (row * w + col).reshape(n, q * p, 1).expand(n, q * p, d)
    pixels = value.reshape(n, d, h * w).transpose(1, 2).gather(1, index)  # [N, Q * P, D]
    # a [N, D, Q, P] view with D innermost in memory: the layout upstream's indexing gives, so that the weighted
    # sum over the points runs in the same order and the outputs equal upstream's to the last bit
    return pixels.transpose(1, 2).reshape(n, d, q, p)


def deformable_attention_core(
    value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    num_points: list[int],
    sampling: str = "bilinear",
) -> torch.Tensor:
    """Sample every level (bilinearly, or one pixel per point for ``discrete``) and sum with the attention weights.

    Args:
        value: [B, sum(H_l * W_l), heads, head_dim]
        spatial_shapes: [(H_l, W_l)] per level
        sampling_locations: [B, Q, heads, sum(num_points), 2] in [0, 1] (x, y)
        attention_weights: [B, Q, heads, sum(num_points)] (softmaxed over all points of all levels)
        num_points: points per level
        sampling: "bilinear" (grid_sample) or "discrete" (see :func:`discrete_sample`)

    Returns: [B, Q, heads * head_dim]
    """
    b, _, heads, head_dim = value.shape
    q = sampling_locations.shape[1]
    values = value.split([h * w for h, w in spatial_shapes], dim=1)
    discrete = sampling == "discrete"
    grids = (sampling_locations if discrete else 2 * sampling_locations - 1).split(num_points, dim=3)
    sampled = []
    for (h, w), v, grid in zip(spatial_shapes, values, grids, strict=True):
        v = v.permute(0, 2, 3, 1).reshape(b * heads, head_dim, h, w)  # [B*heads, D, H, W]
        grid = grid.transpose(1, 2).flatten(0, 1)  # [B*heads, Q, P_l, 2]
        if discrete:
            sampled.append(discrete_sample(v, grid))
        else:
            sampled.append(F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    sampled = torch.cat(sampled, dim=-1)  # [B*heads, D, Q, P]
    weights = attention_weights.transpose(1, 2).reshape(b * heads, 1, q, -1)
    out = (sampled * weights).sum(-1)  # [B*heads, D, Q]
    return out.reshape(b, heads * head_dim, q).transpose(1, 2)


class MSDeformableAttention(nn.Module):
    """Deformable cross-attention of queries on a multi-level memory.

    Args:
        dim: embedding size; num_heads: heads (dim // num_heads per head);
        num_levels: memory levels; num_points: points per level (an int, or a list per level = v2).
        offset_scale: sampling location = ref_xy + offset / n_points_l * ref_wh * offset_scale.
        sampling: "bilinear" (default) or "discrete" (official v2 ``cross_attn_method: discrete``, the dsp
            models): one pixel per point; the offset projection gets no gradient then and is frozen, as upstream.

    forward(query [B, Q, C], reference_points [B, Q, 1 or L, 4] (cxcywh in [0, 1]),
            value [B, S, C], spatial_shapes [(H_l, W_l)], value_mask [B, S] or None) -> [B, Q, C]
    """

    def __init__(
        self,
        dim: int = 256,
        num_heads: int = 8,
        num_levels: int = 3,
        num_points: int | list[int] = 4,
        offset_scale: float = 0.5,
        sampling: str = "bilinear",
    ) -> None:
        super().__init__()
        if sampling not in SAMPLING:
            raise ValueError(f"sampling={sampling!r} is unknown; use one of {', '.join(SAMPLING)}")
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_points = [num_points] * num_levels if isinstance(num_points, int) else list(num_points)
        if len(self.num_points) != num_levels:
            raise ValueError(f"num_points={num_points} needs one entry per level ({num_levels})")
        self.dim, self.num_heads, self.num_levels = dim, num_heads, num_levels
        self.offset_scale = offset_scale
        total = sum(self.num_points)
        self.sampling_offsets = nn.Linear(dim, num_heads * total * 2)
        self.attention_weights = nn.Linear(dim, num_heads * total)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        scale = torch.cat([torch.full((n,), 1.0 / n) for n in self.num_points])
        self.register_buffer("num_points_scale", scale, persistent=False)
        self.reset_parameters()
        self.sampling = sampling
        if sampling == "discrete":  # rounding cuts the gradient to the offsets: train without them
            self.sampling_offsets.requires_grad_(False)

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True).values  # unit direction per head
        index = torch.cat([torch.arange(1, n + 1, dtype=torch.float32) for n in self.num_points])
        bias = grid[:, None, :] * index[None, :, None]  # [heads, P, 2]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for layer in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        value: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        value_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, q, _ = query.shape
        total = sum(self.num_points)
        value = self.value_proj(value)
        if value_mask is not None:
            value = value * value_mask[..., None].to(value.dtype)
        value = value.reshape(b, value.shape[1], self.num_heads, self.dim // self.num_heads)
        offsets = self.sampling_offsets(query).reshape(b, q, self.num_heads, total, 2)
        weights = self.attention_weights(query).reshape(b, q, self.num_heads, total).softmax(-1)
        if reference_points.shape[-1] != 4:
            raise ValueError(
                f"reference_points must be cxcywh boxes [..., 4], got {tuple(reference_points.shape)}"
            )
        ref = reference_points[:, :, :1]  # one reference box per query (shared by all levels)
        scale = self.num_points_scale.to(offsets.dtype)[None, None, None, :, None]
        locations = ref[:, :, None, :, :2] + offsets * scale * ref[:, :, None, :, 2:] * self.offset_scale
        out = deformable_attention_core(value, spatial_shapes, locations, weights, self.num_points, self.sampling)
        return self.output_proj(out)
