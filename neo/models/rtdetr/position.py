"""2D sin-cos position embedding for flattened (row-major) feature maps of any H x W."""

from __future__ import annotations

import torch


def sincos_2d_embedding(
    height: int,
    width: int,
    dim: int,
    temperature: float = 10000.0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Embedding for a map flattened row-major (index = y * width + x).

    Channels are [sin(y w) | cos(y w) | sin(x w) | cos(x w)], w_k = temperature^(-k / (dim / 4)).
    On square maps this equals the official RT-DETR formula exactly (which flattens x-major and so
    scrambles positions when height != width).

    Returns: [1, height * width, dim]
    """
    if dim % 4:
        raise ValueError(f"position embedding dim must be divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    out_y = y.reshape(-1, 1) * omega
    out_x = x.reshape(-1, 1) * omega
    emb = torch.cat([out_y.sin(), out_y.cos(), out_x.sin(), out_x.cos()], dim=1)
    return emb[None].to(dtype)
