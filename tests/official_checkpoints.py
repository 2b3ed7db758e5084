"""Official-format RT-DETR state dicts and files for tests, in the layouts the releases use.

Two sources, both with the official names:
  * the reference key lists (`/work/shared/reference/*_state_dict_keys.txt`, listed from the official v1 and
    v2 models: R18 and R50 of each), filled with random values: :func:`official_state_dict`;
  * a real neo detector's weights renamed to the official v1 or v2 names: :func:`official_from_net`, so an
    imported file's outputs can be compared with the model it came from.
v2 differs from v1 in the encoder's input projections (`encoder.input_proj.{i}.conv/.norm`, v1 `.0/.1`), the
encoder-output head (`decoder.enc_output.proj/.norm`, v1 `.0/.1`) and three stored buffers (640x640 anchors
and valid mask, `num_points_scale` per decoder layer).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

REFERENCE = Path("/work/shared/reference")
# (preset, layout) -> reference list stem
REFERENCE_LISTS = {
    ("rtdetr_r18", "v1"): "rtdetr_r18vd_v1",
    ("rtdetr_r50", "v1"): "rtdetr_r50vd_v1",
    ("rtdetr_r18", "v2"): "rtdetrv2_r18vd",
    ("rtdetr_r50", "v2"): "rtdetrv2_r50vd",
}
# neo (= official v1) name -> official v2 name
V2_NAMES = [
    (re.compile(r"^encoder\.input_proj\.(\d+)\.0\."), r"encoder.input_proj.\1.conv."),
    (re.compile(r"^encoder\.input_proj\.(\d+)\.1\."), r"encoder.input_proj.\1.norm."),
    (re.compile(r"^decoder\.enc_output\.0\."), "decoder.enc_output.proj."),
    (re.compile(r"^decoder\.enc_output\.1\."), "decoder.enc_output.norm."),
]
V2_ANCHORS = 8400  # 640x640: 80^2 + 40^2 + 20^2
# neo (timm HGNetv2 inside TimmBackbone) name -> official HGNetv2 name (upstream hgnetv2.py module names)
HGNETV2_NAMES = [
    (re.compile(r"^backbone\.model\.stem\.(stem2[ab])\.conv\."), r"backbone.stem.\1.conv.1."),  # ZeroPad2d, Conv2d
    (re.compile(r"^backbone\.model\.stem\."), "backbone.stem."),
    (re.compile(r"^backbone\.model\.stages_(\d+)\."), r"backbone.stages.\1."),
    (re.compile(r"\.aggregation\.0\."), ".aggregation_squeeze_conv."),
    (re.compile(r"\.aggregation\.1\."), ".aggregation_excitation_conv."),
]


def reference_shapes(stem: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a reference list, e.g. stem "rtdetrv2_r18vd"."""
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


def v2_name(key: str) -> str:
    """The official v2 name of a neo / official v1 key."""
    for pattern, replacement in V2_NAMES:
        key = pattern.sub(replacement, key)
    return key


def to_v2(state_dict: dict[str, torch.Tensor], points_scale: dict[str, torch.Tensor] | None = None,
          ) -> dict[str, torch.Tensor]:
    """The released v2 layout of a v1 state dict: v2 names, 640x640 anchors and valid mask, and
    ``num_points_scale`` per decoder layer (``points_scale``: key -> buffer, default 1/4 for 4 points x 3 levels)."""
    out = {v2_name(key): value for key, value in state_dict.items()}
    out["decoder.anchors"] = torch.randn(1, V2_ANCHORS, 4)
    out["decoder.valid_mask"] = torch.ones(1, V2_ANCHORS, 1, dtype=torch.bool)
    layers = sorted({k.split(".")[3] for k in state_dict if k.startswith("decoder.decoder.layers.")}, key=int)
    for i in layers:
        key = f"decoder.decoder.layers.{i}.cross_attn.num_points_scale"
        out[key] = points_scale[key].clone() if points_scale else torch.full((12,), 0.25)
    return out


def hgnetv2_official_name(key: str) -> str:
    """The official RT-DETR HGNetv2 name of a neo ``rtdetr_hgnetv2_*`` key (other keys unchanged)."""
    for pattern, replacement in HGNETV2_NAMES:
        key = pattern.sub(replacement, key)
    return key


def official_from_net(net: torch.nn.Module, layout: str) -> dict[str, torch.Tensor]:
    """A neo detector's weights under the official ``layout`` ("v1" or "v2") names (copies, CPU); an HGNetv2
    backbone gets the official HGNetv2 names."""
    state = {hgnetv2_official_name(k): v.detach().clone() for k, v in net.state_dict().items()}
    if layout == "v1":
        return state
    scales = {name: buf for name, buf in net.named_buffers() if name.endswith("num_points_scale")}
    return to_v2(state, scales)


def save_official(path: Path, model: dict[str, torch.Tensor], ema: dict[str, torch.Tensor] | None = None,
                  **extra) -> Path:
    """Write an official-style ``.pth``: ``{"model": ..., "ema": {"module": ..., "updates": n}, ...extra}``."""
    content = {"model": model, **extra}
    if ema is not None:
        content["ema"] = {"module": ema, "updates": 1000}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, path)
    return path
