"""Official RT-DETR (v1 / v2, lyuwenyu/RT-DETR) checkpoints -> neo state dicts.

neo mirrors the official module names, so v1 keys map one to one. The released v2 files differ only in:
  * `encoder.input_proj.{i}.conv.*` / `encoder.input_proj.{i}.norm.*` (v2's HybridEncoder names its input
    projections) -> `encoder.input_proj.{i}.0.*` / `.1.*` (v1's and neo's nn.Sequential);
  * `decoder.anchors`, `decoder.valid_mask`: buffers sized for 640x640 -> dropped (neo builds
    anchors from the actual feature shapes);
  * `decoder.decoder.layers.{i}.cross_attn.num_points_scale`: derived from the points per level ->
    dropped (neo recomputes it; a mismatch with the preset's points is an error);
  * `decoder.enc_output.proj.*` / `decoder.enc_output.norm.*` -> `decoder.enc_output.0.*` / `.1.*`.
The official HGNetv2 backbone (L/X/H) has the layers of timm's hgnetv2_b4/b5/b6, which neo wraps as
`backbone.model.*`; five renames place its keys: `backbone.stem.stem2a/stem2b.conv.1.*` (a pad + conv
Sequential upstream) -> `.conv.*`, `backbone.stem.` -> `backbone.model.stem.`, `backbone.stages.{i}.` ->
`backbone.model.stages_{i}.`, and `aggregation_squeeze_conv` / `aggregation_excitation_conv` -> `aggregation.0` /
`aggregation.1`.
Any other key that the target model does not have is an error, never a silent skip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from .presnet import depth_of_layout
from .sampling_variants import DEFAULT_POINTS, detect_num_points, points_from_scale

RENAMES = [
    (re.compile(r"^encoder\.input_proj\.(\d+)\.conv\."), r"encoder.input_proj.\1.0."),
    (re.compile(r"^encoder\.input_proj\.(\d+)\.norm\."), r"encoder.input_proj.\1.1."),
    (re.compile(r"^decoder\.enc_output\.proj\."), "decoder.enc_output.0."),
    (re.compile(r"^decoder\.enc_output\.norm\."), "decoder.enc_output.1."),
    # official HGNetv2 -> timm's HGNetv2 inside neo's TimmBackbone (first: the stem's pad + conv Sequential)
    (re.compile(r"^backbone\.stem\.(stem2[ab])\.conv\.1\."), r"backbone.stem.\1.conv."),
    (re.compile(r"^backbone\.stem\."), "backbone.model.stem."),
    (re.compile(r"^backbone\.stages\.(\d+)\."), r"backbone.model.stages_\1."),
    (re.compile(r"^(backbone\.model\.stages_\d+\.blocks\.\d+)\.aggregation_squeeze_conv\."), r"\1.aggregation.0."),
    (re.compile(r"^(backbone\.model\.stages_\d+\.blocks\.\d+)\.aggregation_excitation_conv\."), r"\1.aggregation.1."),
]
# HGNetv2 size by the width of its last stem conv (official L/X/H = timm hgnetv2_b4/b5/b6)
HGNETV2_PRESETS = {48: "rtdetr_hgnetv2_l", 64: "rtdetr_hgnetv2_x", 96: "rtdetr_hgnetv2_h"}
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
    target_num_classes: int | None = None  # class count of the model it was loaded into
    derived: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # dropped derived buffers

    def mapped_by_module(self) -> dict[str, int]:
        """Loaded tensors per top-level module, e.g. {"backbone": 102, "encoder": 87, "decoder": 171}."""
        counts: dict[str, int] = {}
        for key in self.mapped:
            top = key.split(".", 1)[0]
            counts[top] = counts.get(top, 0) + 1
        return counts

    def summary(self) -> str:
        """Multi-line text: counts, then one line per renamed, dropped and re-initialised key."""
        per_module = ", ".join(f"{k} {n}" for k, n in self.mapped_by_module().items())
        lines = [f"source: {self.source}; {len(self.mapped)} tensors loaded ({per_module}), "
                 f"{len(self.renamed)} renamed, {len(self.dropped)} dropped, "
                 f"{len(self.reinitialised)} re-initialised"]
        lines += [f"  renamed {a} -> {b}" for a, b in self.renamed.items()]
        lines += [f"  dropped {k}: {why}" for k, why in self.dropped.items()]
        lines += [f"  re-initialised {k}: class count {self.num_classes} -> {self.target_num_classes}"
                  for k in self.reinitialised]
        return "\n".join(lines)


def extract_state_dict(checkpoint: dict, prefer: str = "ema") -> tuple[dict[str, torch.Tensor], str]:
    """Pick the weights of an official checkpoint. Returns (state_dict, source).

    prefer: "ema" = `ema.module` when present, else `model` (the official loaders' choice);
        "model" = `model` when present, else `ema.module`. A bare state dict is used as is ("state_dict").
    """
    if prefer not in ("ema", "model"):
        raise ValueError(f"prefer={prefer!r} is unknown: use 'ema' or 'model'")
    if not isinstance(checkpoint, dict):
        raise ValueError(f"expected a checkpoint dict, got {type(checkpoint).__name__}")
    ema = checkpoint.get("ema")
    found = {}
    if isinstance(ema, dict) and isinstance(ema.get("module"), dict) and ema["module"]:
        found["ema.module"] = ema["module"]
    if isinstance(checkpoint.get("model"), dict) and checkpoint["model"]:
        found["model"] = checkpoint["model"]
    order = ("ema.module", "model") if prefer == "ema" else ("model", "ema.module")
    for source in order:
        if source in found:
            return dict(found[source]), source
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return dict(checkpoint), "state_dict"
    raise ValueError(
        f"no state dict found in checkpoint (top-level keys: {sorted(checkpoint)[:10]}); expected an official "
        "RT-DETR .pth with 'model' and/or 'ema': {'module': ...}, or a bare state dict"
    )


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


@dataclass(frozen=True)
class OfficialArchitecture:
    """What an official (or neo) RT-DETR state dict is, read from its keys and shapes."""

    preset: str  # matching neo preset (conf/model/<preset>.yaml)
    version: str  # "v1" or "v2" (v2 names input_proj.conv/.norm, enc_output.proj; stores anchors, point scales)
    num_classes: int  # rows of the class heads
    num_decoder_layers: int
    num_points: tuple[int, ...] = DEFAULT_POINTS  # decoder sampling points per level (v2 sp1/sp2/sp3: 1/2/3)
    backbone: str = "presnet"  # "presnet", "hgnetv2-official" (official names) or "hgnetv2" (neo's timm names)

    @property
    def sampling_points_variant(self) -> str | None:
        """"sp1", "sp2", "sp3" for the released fewer-points variants (the same count on every level),
        "points [a, b, c]" for other per-level counts, None for the default 4 per level."""
        if self.num_points == DEFAULT_POINTS:
            return None
        if len(set(self.num_points)) == 1:
            return f"sp{self.num_points[0]}"
        return f"points {list(self.num_points)}"


V2_MARKERS = re.compile(
    r"^(encoder\.input_proj\.\d+\.(conv|norm)\..*"
    r"|decoder\.(anchors|valid_mask|enc_output\.(proj|norm)\..*|decoder\.layers\.\d+\.cross_attn\.num_points_scale))$"
)


def detect_architecture(state_dict: dict[str, torch.Tensor]) -> OfficialArchitecture:
    """Preset, version, class count, decoder depth, sampling points and backbone of an official or neo RT-DETR
    state dict.

    PResNet-vd: depth from the blocks of stage 3 and the presence of bottleneck convs (R18: 2 basic blocks,
    R34: 6 basic, R50: 6 bottleneck, R101: 23 bottleneck); R50-m from its CSP layers' extra conv3 (expansion
    0.5). HGNetv2 L/X/H from the width of the last stem conv (48/64/96). Raises ValueError when the keys are
    neither (e.g. a narrower PResNet than the official 32-channel first stem conv).
    """
    keys = [k.removeprefix("module.") for k in state_dict]
    version = "v2" if any(V2_MARKERS.match(k) for k in keys) else "v1"
    sd, dropped = convert_state_dict(state_dict)
    head = sd.get("decoder.enc_score_head.weight")
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"decoder\.dec_score_head\.(\d+)\.weight$", k))}
    preset, backbone, problem = _backbone_preset(sd)
    if any(k.startswith("backbone.stem.") for k in keys) and backbone == "hgnetv2":
        backbone = "hgnetv2-official"
    if preset is None or head is None or not layers:
        sample = ", ".join(sorted(sd)[:5])
        raise ValueError(
            "state dict is not an RT-DETR with a PResNet-vd (R18/R34/R50/R50-m/R101) or HGNetv2 (L/X/H) backbone: "
            f"found {problem}, class head={'yes' if head is not None else 'no'} (first keys: {sample}). "
            "Other backbones and narrower variants (neo's tiny) do not match an official preset."
        )
    levels = len({m.group(1) for k in sd if (m := re.match(r"decoder\.input_proj\.(\d+)\.", k))}) or 3
    points = detect_num_points({**sd, **dropped.derived}, levels)  # derived: the v2 points-per-level buffers
    return OfficialArchitecture(preset, version, int(head.shape[0]), len(layers), points, backbone)


def _backbone_preset(sd: dict[str, torch.Tensor]) -> tuple[str | None, str, str]:
    """(preset or None, backbone kind, what was found) from converted (neo-named) backbone keys."""
    hg_stem = sd.get("backbone.model.stem.stem4.conv.weight")
    if hg_stem is not None:
        preset = HGNETV2_PRESETS.get(int(hg_stem.shape[0]))
        return preset, "hgnetv2", f"an HGNetv2 stem of width {int(hg_stem.shape[0])} (official: 48 L, 64 X, 96 H)"
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"backbone\.res_layers\.2\.blocks\.(\d+)\.", k))}
    bottleneck = any(k.startswith("backbone.res_layers.0.blocks.0.branch2c.") for k in sd)
    depth = depth_of_layout(len(blocks), bottleneck)
    stem = sd.get("backbone.conv1.conv1_1.conv.weight")
    found = (f"{len(blocks)} stage-3 blocks, bottleneck={bottleneck}, stem width "
             f"{None if stem is None else stem.shape[0]} (official: 32)")
    if depth is None or stem is None or stem.shape[0] != 32:
        return None, "presnet", found
    preset = f"rtdetr_r{depth}"
    if depth == 50 and "encoder.fpn_blocks.0.conv3.conv.weight" in sd:  # expansion 0.5
        preset = "rtdetr_r50m"
    return preset, "presnet", found


def infer_preset(state_dict: dict[str, torch.Tensor]) -> str:
    """Name of the neo preset whose architecture matches an (official or neo) state dict."""
    return detect_architecture(state_dict).preset


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
        kinds = [_listed(names, label) for label, names in
                 (("unexpected key{s}", unexpected), ("missing key{s}", missing),
                  ("key{s} with another shape", mismatched)) if names]
        raise ValueError(f"the weights do not fit the model: {'; '.join(kinds)}; {_preset_hint(state_dict)}.")
    for key, value in report.derived.items():  # v2 points per level must match the preset's
        ours = net.get_buffer(key)
        if ours.shape != value.shape or not torch.allclose(ours.float().cpu(), value.float()):
            points = points_from_scale(value) if value.numel() else []
            raise ValueError(f"{key}: checkpoint points-per-level scale {value.tolist()} differs from the model's "
                             f"{ours.tolist()}; set model.net.decoder.num_points={points} to match")
    missing_after = net.load_state_dict(load, strict=False).missing_keys
    if sorted(missing_after) != sorted(report.reinitialised):
        raise ValueError(f"keys left unloaded: {sorted(set(missing_after) - set(report.reinitialised))}")
    report.mapped = sorted(load)
    report.target_num_classes = getattr(net, "num_classes", None)
    return report


def _listed(names: list[str], label: str, shown: int = 4) -> str:
    """'18 unexpected keys (a, b, c, d, ... 14 more)' for label 'unexpected key{s}'."""
    more = f", ... {len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)} {label.format(s='s' if len(names) != 1 else '')} ({', '.join(names[:shown])}{more})"


def _preset_hint(state_dict: dict[str, torch.Tensor]) -> str:
    """'the checkpoint is rtdetr_r18 (v1, 80 classes): use model=rtdetr_r18', or a generic hint."""
    try:
        arch = detect_architecture(state_dict)
    except ValueError:
        return "pick the model preset the checkpoint was trained with"
    points = "" if arch.sampling_points_variant is None else \
        f" model.net.decoder.num_points=[{','.join(map(str, arch.num_points))}]"
    return (f"the checkpoint is {arch.preset} ({arch.num_classes} classes, {arch.num_decoder_layers} decoder "
            f"layers{'' if not points else ', ' + arch.sampling_points_variant}): use model={arch.preset}{points}")


def load_official(net: nn.Module, checkpoint: dict, prefer: str = "ema") -> ConversionReport:
    """extract_state_dict -> convert_state_dict -> load_converted on an official checkpoint dict (files are
    read by ``neo.checkpoints.format``). Returns the report."""
    official, source = extract_state_dict(checkpoint, prefer)
    converted, report = convert_state_dict(official)
    report.source = source
    return load_converted(net, converted, report)
