"""Official-format RT-DETR state dicts for tests: exact names and shapes, random values.

From the reference key lists (`/work/shared/reference/*_state_dict_keys.txt`: R18 v1, R50 v1, R50 v2),
or, for presets without a list, from neo's own module names (which mirror the official ones) built on
the meta device (no memory), plus `to_v2` for the v2 layout.
"""

from __future__ import annotations

from pathlib import Path

import torch

REFERENCE = Path("/work/shared/reference")


def reference_shapes(stem: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a reference list, e.g. stem "rtdetr_r18vd_v1"."""
    out = {}
    for line in (REFERENCE / f"{stem}_state_dict_keys.txt").read_text().splitlines():
        key, shape = line.split("\t")
        out[key] = tuple(int(v) for v in shape.strip("()").split(",") if v.strip())
    return out


def random_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of those shapes (BN variances positive, counters integer, v2 point scales 1/4)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, dims in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(dims, generator=g) + 0.5
        elif key.endswith("num_points_scale"):
            out[key] = torch.full(dims, 0.25)  # 4 points per level
        elif key.endswith("valid_mask"):
            out[key] = torch.ones(dims, dtype=torch.bool)
        else:
            out[key] = torch.randn(dims, generator=g)
    return out


def official_state_dict(stem: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with exactly the official names and shapes of a reference key list."""
    return random_state_dict(reference_shapes(stem), seed)


def preset_shapes(preset: str, num_classes: int = 80) -> dict[str, tuple[int, ...]]:
    """Official-v1-style key -> shape of a neo preset, built on the meta device (instant, no memory)."""
    from neo.models.rtdetr import build_preset

    with torch.device("meta"):
        net, _, _ = build_preset(preset, num_classes=num_classes)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def to_v2(state_dict: dict[str, torch.Tensor], anchors: int = 8400) -> dict[str, torch.Tensor]:
    """The v2 layout of a v1 state dict: enc_output.proj/.norm names, 640x640 anchors and valid_mask,
    num_points_scale per decoder layer."""
    out = {}
    for key, value in state_dict.items():
        out[key.replace("decoder.enc_output.0.", "decoder.enc_output.proj.")
               .replace("decoder.enc_output.1.", "decoder.enc_output.norm.")] = value
    out["decoder.anchors"] = torch.randn(1, anchors, 4)
    out["decoder.valid_mask"] = torch.ones(1, anchors, 1, dtype=torch.bool)
    layers = {k.split(".")[3] for k in state_dict if k.startswith("decoder.decoder.layers.")}
    for i in sorted(layers):
        out[f"decoder.decoder.layers.{i}.cross_attn.num_points_scale"] = torch.full((12,), 0.25)
    return out
