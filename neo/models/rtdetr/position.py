"""2D sin-cos position embedding for flattened (row-major) feature maps of any H x W.

Two layouts (``HybridEncoder(position_embedding=...)``):
- ``consistent`` (neo's default): each token gets the embedding of its own (y, x) position.
- ``official``: the upstream RT-DETR build, which enumerates positions x-major while the tokens are
  row-major; for H != W tokens get another position's embedding. Equal to ``consistent`` when H == W.
"""

from __future__ import annotations

import torch

POSITION_EMBEDDINGS = ("consistent", "official")


def sincos_2d_embedding(
    height: int,
    width: int,
    dim: int,
    temperature: float = 10000.0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    layout: str = "consistent",
) -> torch.Tensor:
    """Embedding for a map flattened row-major (index = y * width + x).

    ``consistent``: token (y, x) gets [sin(y w) | cos(y w) | sin(x w) | cos(x w)], w_k = temperature^(-k / (dim / 4)).
    On square maps this equals the official RT-DETR formula exactly.
    ``official``: the upstream layout, which enumerates (x, y) with x outer and y inner (index = x * height + y)
    and adds the result to row-major tokens: token k gets the channels of the pair (a, b) = (k // height,
    k % height), i.e. the ``consistent`` embedding of a width x height map.

    Returns: [1, height * width, dim]
    """
    if layout not in POSITION_EMBEDDINGS:
        raise ValueError(f"position_embedding must be one of {POSITION_EMBEDDINGS}, got {layout!r}")
    if dim % 4:
        raise ValueError(f"position embedding dim must be divisible by 4, got {dim}")
    rows, cols = (height, width) if layout == "consistent" else (width, height)
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    y, x = torch.meshgrid(
        torch.arange(rows, dtype=torch.float32, device=device),
        torch.arange(cols, dtype=torch.float32, device=device),
        indexing="ij",
    )
    out_y = y.reshape(-1, 1) * omega
    out_x = x.reshape(-1, 1) * omega
    emb = torch.cat([out_y.sin(), out_y.cos(), out_x.sin(), out_x.cos()], dim=1)
    return emb[None].to(dtype)
