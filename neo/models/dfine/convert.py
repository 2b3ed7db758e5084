"""Official D-FINE checkpoints (Peterande/D-FINE) -> neo state dicts.

neo's D-FINE modules carry the official names, so most keys map one to one. The official layout differs in:
  * the backbone: the official HGNetv2 module `backbone.stem.*` / `backbone.stages.{i}.*` is timm's
    `hgnetv2_b*` with the same sub-module names, which neo wraps as `backbone.model.stem.*` /
    `backbone.model.stages_{i}.*` (timm's features_only naming);
  * the LQE heads: `decoder.decoder.lqe_layers.{i}.reg_conf.layers.{0,1}.*` -> `...lqe_layers.{i}.mlp.{0,2}.*`;
  * buffers neo derives itself, dropped: `decoder.anchors` / `decoder.valid_mask` (640x640; neo builds them
    per input size), `decoder.decoder.{up,reg_scale}` (the same tensors as `decoder.{up,reg_scale}`, stored
    twice officially), `decoder.decoder.layers.{i}.cross_attn.num_points_scale` (from the points per level).
Any other key the target model does not have is an error (``neo.models.rtdetr.convert.load_converted``).
"""

from __future__ import annotations

import re

import torch

from neo.models.rtdetr.convert import DROPPED as RTDETR_DROPPED
from neo.models.rtdetr.convert import HGNETV2_RENAMES, ConversionReport, OfficialArchitecture, rename_keys

LAYOUT = "dfine"
RENAMES = [
    *HGNETV2_RENAMES,
    (re.compile(r"^(decoder\.decoder\.lqe_layers\.\d+)\.reg_conf\.layers\.0\."), r"\1.mlp.0."),
    (re.compile(r"^(decoder\.decoder\.lqe_layers\.\d+)\.reg_conf\.layers\.1\."), r"\1.mlp.2."),
]
DROPPED = {
    **RTDETR_DROPPED,  # the 640x640 anchors and valid mask, the points-per-level scales
    re.compile(r"^decoder\.decoder\.(up|reg_scale)$"): "second name of decoder.up / decoder.reg_scale",
}
MARKER = re.compile(r"^decoder\.decoder\.lqe_layers\.\d+\.")
# (stem1 channels, stem4 channels, feature levels) -> preset (HGNetv2 B0: 16/16, B2: 24/32, B4: 32/48, B5: 32/64)
PRESET_BY_SHAPE = {
    (16, 16, 2): "dfine_n",
    (16, 16, 3): "dfine_s",
    (24, 32, 3): "dfine_m",
    (32, 48, 3): "dfine_l",
    (32, 64, 3): "dfine_x",
}


def is_dfine(state_dict: dict[str, torch.Tensor]) -> bool:
    """True for an official (or neo) D-FINE state dict: it has LQE heads."""
    return any(MARKER.match(k.removeprefix("module.")) for k in state_dict)


def convert_dfine_state_dict(
    official: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Rename / drop official D-FINE keys (prefix `module.` stripped). Returns (neo_state_dict, report)."""
    return rename_keys(official, RENAMES, DROPPED)


def detect_dfine_architecture(state_dict: dict[str, torch.Tensor]) -> OfficialArchitecture:
    """Preset (from the backbone's stem widths and the encoder's levels), class count and decoder depth.

    Raises ValueError when the keys are not a D-FINE on an official HGNetv2 (B0, B2, B4, B5).
    """
    sd, _ = convert_dfine_state_dict(state_dict)
    stem1 = sd.get("backbone.model.stem.stem1.conv.weight")
    stem4 = sd.get("backbone.model.stem.stem4.conv.weight")
    levels = len({m.group(1) for k in sd if (m := re.match(r"encoder\.input_proj\.(\d+)\.", k))})
    head = sd.get("decoder.enc_score_head.weight")
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"decoder\.dec_score_head\.(\d+)\.weight$", k))}
    shape = (None if stem1 is None else int(stem1.shape[0]), None if stem4 is None else int(stem4.shape[0]), levels)
    preset = PRESET_BY_SHAPE.get(shape)
    if preset is None or head is None or not layers:
        raise ValueError(
            f"state dict is not a D-FINE on an official HGNetv2 (B0/B2/B4/B5): stem widths {shape[:2]}, "
            f"{levels} encoder levels, class head={'yes' if head is not None else 'no'}"
        )
    return OfficialArchitecture(preset, LAYOUT, int(head.shape[0]), len(layers))
