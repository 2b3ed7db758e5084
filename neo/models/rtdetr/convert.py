"""Official RT-DETR (v1 / v2, lyuwenyu/RT-DETR) checkpoints -> neo state dicts.

neo mirrors the official module names, so v1 keys map one to one. v2 differs only in:
  * `decoder.anchors`, `decoder.valid_mask`: buffers sized for 640x640 -> dropped (neo builds
    anchors from the actual feature shapes);
  * `decoder.decoder.layers.{i}.cross_attn.num_points_scale`: derived from the points per level ->
    dropped (neo recomputes it; a mismatch with the preset's points is an error);
  * `decoder.enc_output.proj.*` / `decoder.enc_output.norm.*` -> `decoder.enc_output.0.*` / `.1.*`.
Any other key that the target model does not have is an error, never a silent skip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

RENAMES = [
    (re.compile(r"^decoder\.enc_output\.proj\."), "decoder.enc_output.0."),
    (re.compile(r"^decoder\.enc_output\.norm\."), "decoder.enc_output.1."),
]
DROPPED = {
    re.compile(r"^decoder\.anchors$"): "size-bound buffer (640x640 anchors); neo builds anchors per input size",
    re.compile(r"^decoder\.valid_mask$"): "size-bound buffer (640x640 valid mask); neo builds it per input size",
    re.compile(r"^decoder\.decoder\.layers\.\d+\.cross_attn\.num_points_scale$"): (
        "derived buffer (1 / points per level); neo recomputes it"
    ),
}
# Tensors whose shape depends on the number of classes (re-initialised when the class count changes).
CLASS_DEPENDENT = re.compile(
    r"^decoder\.(enc_score_head\.(weight|bias)|dec_score_head\.\d+\.(weight|bias)|denoising_class_embed\.weight)$"
)


@dataclass
class ConversionReport:
    """What happened to every official key."""

    source: str = "state_dict"  # "ema.module", "model" or "state_dict"
    mapped: list[str] = field(default_factory=list)  # neo keys loaded from the checkpoint
    renamed: dict[str, str] = field(default_factory=dict)  # official -> neo
    dropped: dict[str, str] = field(default_factory=dict)  # official key -> reason
    reinitialised: list[str] = field(default_factory=list)  # class-dependent keys left at neo's init
    num_classes: int | None = None  # class count of the checkpoint
    derived: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # dropped derived buffers

    def summary(self) -> str:
        lines = [f"source: {self.source}; {len(self.mapped)} tensors loaded, {len(self.renamed)} renamed, "
                 f"{len(self.dropped)} dropped, {len(self.reinitialised)} re-initialised"]
        lines += [f"  renamed {a} -> {b}" for a, b in self.renamed.items()]
        lines += [f"  dropped {k}: {why}" for k, why in self.dropped.items()]
        lines += [f"  re-initialised {k} (class count {self.num_classes} -> new)" for k in self.reinitialised]
        return "\n".join(lines)


def extract_state_dict(checkpoint: dict | str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """Pick the weights of an official checkpoint: `ema.module` when present, else `model`, else the
    dict itself. Returns (state_dict, source)."""
    if isinstance(checkpoint, str | Path):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"expected a checkpoint dict, got {type(checkpoint).__name__}")
    ema = checkpoint.get("ema")
    if isinstance(ema, dict) and isinstance(ema.get("module"), dict):
        return dict(ema["module"]), "ema.module"
    if isinstance(checkpoint.get("model"), dict):
        return dict(checkpoint["model"]), "model"
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return dict(checkpoint), "state_dict"
    raise ValueError(f"no state dict found in checkpoint (top-level keys: {sorted(checkpoint)[:10]})")


def convert_state_dict(official: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Rename / drop official keys (module-prefix `module.` stripped). Returns (neo_state_dict, report)."""
    report = ConversionReport()
    out = {}
    for key, value in official.items():
        key = key.removeprefix("module.")
        reason = next((why for pattern, why in DROPPED.items() if pattern.match(key)), None)
        if reason is not None:
            report.dropped[key] = reason
            if key.endswith("num_points_scale"):
                report.derived[key] = value
            continue
        new = key
        for pattern, repl in RENAMES:
            new = pattern.sub(repl, new)
        if new != key:
            report.renamed[key] = new
        out[new] = value
    if "decoder.enc_score_head.weight" in out:
        report.num_classes = int(out["decoder.enc_score_head.weight"].shape[0])
    return out, report


def infer_preset(state_dict: dict[str, torch.Tensor]) -> str:
    """Name of the neo preset whose architecture matches an (official or neo) state dict."""
    sd = convert_state_dict(state_dict)[0]
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"backbone\.res_layers\.2\.blocks\.(\d+)\.", k))}
    bottleneck = any(k.startswith("backbone.res_layers.0.blocks.0.branch2c.") for k in sd)
    depth = {(2, False): 18, (6, False): 34, (6, True): 50, (23, True): 101}.get((len(blocks), bottleneck))
    if depth is None:
        raise ValueError("state dict is not a PResNet-vd RT-DETR (cannot tell R18/R34/R50/R101 apart)")
    if depth == 50 and "encoder.fpn_blocks.0.conv3.conv.weight" in sd:  # expansion 0.5
        return "rtdetr_r50m"
    return f"rtdetr_r{depth}"


def load_converted(
    net: nn.Module, state_dict: dict[str, torch.Tensor], report: ConversionReport | None = None
) -> ConversionReport:
    """Load a converted state dict into `net` strictly, except class-dependent tensors whose shape
    differs (a different class count): those keep `net`'s initialisation and are listed in the report.
    Raises ValueError naming every unexpected / missing key or non-class shape mismatch."""
    report = report or ConversionReport()
    target = net.state_dict()
    unexpected = sorted(set(state_dict) - set(target))
    missing = sorted(set(target) - set(state_dict))
    mismatched, load = [], {}
    for key, value in state_dict.items():
        if key not in target:
            continue
        if tuple(value.shape) != tuple(target[key].shape):
            if CLASS_DEPENDENT.match(key):
                report.reinitialised.append(key)
                continue
            mismatched.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(target[key].shape)}")
            continue
        load[key] = value
    if unexpected or missing or mismatched:
        raise ValueError(
            "checkpoint does not fit the model (pick the matching preset, see infer_preset):\n"
            + "".join(f"  unexpected {k}\n" for k in unexpected)
            + "".join(f"  missing {k}\n" for k in missing)
            + "".join(f"  shape {m}\n" for m in mismatched)
        )
    for key, value in report.derived.items():  # v2 points per level must match the preset's
        ours = net.get_buffer(key)
        if ours.shape != value.shape or not torch.allclose(ours.float().cpu(), value.float()):
            raise ValueError(f"{key}: checkpoint points-per-level scale {value.tolist()} differs from the model's "
                             f"{ours.tolist()}; set model.net.decoder.num_points to match")
    missing_after = net.load_state_dict(load, strict=False).missing_keys
    if sorted(missing_after) != sorted(report.reinitialised):
        raise ValueError(f"keys left unloaded: {sorted(set(missing_after) - set(report.reinitialised))}")
    report.mapped = sorted(load)
    return report


def load_official(net: nn.Module, checkpoint: dict | str | Path) -> ConversionReport:
    """extract_state_dict -> convert_state_dict -> load_converted. Returns the report."""
    official, source = extract_state_dict(checkpoint)
    converted, report = convert_state_dict(official)
    report.source = source
    return load_converted(net, converted, report)
