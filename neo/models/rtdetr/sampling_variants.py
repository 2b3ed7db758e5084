"""What an official checkpoint's decoder sampling is: points per level (sp1/sp2/sp3, read from the tensors) and
the dsp name hint (discrete sampling cannot be read from the tensors)."""

from __future__ import annotations

import re

import torch

OFFICIAL_HEADS = 8  # attention heads of every official decoder (nhead=8)
DEFAULT_POINTS = (4, 4, 4)  # deformable sampling points per level of the official default (and v1)
# "dsp" as a word of a file or registry name (rtdetrv2_r18vd_dsp_3x_coco.pth, ..._dsp1_...): the only hint of a
# discrete-sampling checkpoint, whose tensors are those of a bilinear one
DSP_NAME = re.compile(r"(^|[^a-z0-9])dsp\d*([^a-z0-9]|$)", re.IGNORECASE)


def points_from_scale(scale: torch.Tensor) -> list[int]:
    """Points per level from a v2 ``num_points_scale`` buffer ([1/n_0] * n_0 + [1/n_1] * n_1 + ...).

    scale: [sum(n_l)] -> [n_0, n_1, ...]; raises ValueError when the buffer is not of that form."""
    values, points, i = scale.float().tolist(), [], 0
    while i < len(values):
        n = round(1.0 / values[i]) if values[i] > 0 else 0
        if n < 1 or i + n > len(values) or any(abs(v * n - 1.0) > 1e-4 for v in values[i:i + n]):
            raise ValueError(f"num_points_scale {values} is not 1/n repeated n times per level")
        points.append(n)
        i += n
    return points


def detect_num_points(state_dict: dict[str, torch.Tensor], num_levels: int) -> tuple[int, ...]:
    """Decoder sampling points per level of a converted state dict, from the first layer's tensors.

    ``attention_weights.weight`` is [heads * sum(points), dim] (``sampling_offsets`` twice that); the
    official decoders have 8 heads. The per-level split comes from the v2 ``num_points_scale`` buffer when
    the file has it (kept in ``derived``), else the total is spread evenly over the levels (v1: 4 each).
    Raises ValueError when the shapes and the buffer disagree.
    """
    weights = state_dict.get("decoder.decoder.layers.0.cross_attn.attention_weights.weight")
    offsets = state_dict.get("decoder.decoder.layers.0.cross_attn.sampling_offsets.weight")
    if weights is None or offsets is None:
        return DEFAULT_POINTS
    rows = int(weights.shape[0])
    if rows % OFFICIAL_HEADS or int(offsets.shape[0]) != 2 * rows:
        raise ValueError(f"decoder cross-attention shapes {tuple(weights.shape)} (attention_weights) and "
                         f"{tuple(offsets.shape)} (sampling_offsets) do not fit {OFFICIAL_HEADS} heads")
    total = rows // OFFICIAL_HEADS
    scale = state_dict.get("decoder.decoder.layers.0.cross_attn.num_points_scale")
    if scale is not None:
        points = points_from_scale(scale)
        if sum(points) != total or len(points) != num_levels:
            raise ValueError(f"num_points_scale gives points per level {points}, the tensors {total} points over "
                             f"{num_levels} levels")
        return tuple(points)
    if total % num_levels:
        raise ValueError(f"{total} sampling points per head do not spread evenly over {num_levels} levels and "
                         "the file has no num_points_scale to split them")
    return (total // num_levels,) * num_levels
