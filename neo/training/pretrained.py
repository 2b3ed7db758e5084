"""Whole-detector pretrained weights (``pretrained=``): read a neo or official RT-DETR checkpoint, fit the
model config's input normalisation to it, and load it into the detector.

Two kinds of file are accepted:
  * a neo training checkpoint (Lightning format, ``state_dict`` keys ``net.*``; its ``state_dict`` holds
    the EMA weights when EMA was on), e.g. one written by ``neo-weights import``;
  * an official lyuwenyu/RT-DETR ``.pth`` (v1 or v2; ``ema.module`` preferred over ``model``).
A different class count re-initialises only the class-dependent tensors (see
:data:`neo.models.rtdetr.convert.CLASS_DEPENDENT`); the report names them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neo.models.rtdetr.convert import (
    ConversionReport,
    OfficialArchitecture,
    convert_state_dict,
    detect_architecture,
    extract_state_dict,
    load_converted,
    read_checkpoint,
)

log = logging.getLogger(__name__)

NEO_PREFIXES = ("net.", "criterion.", "postprocessor.")


@dataclass
class DetectorWeights:
    """Detector weights read from a file, ready to load into ``RTDETRModule.net``.

    kind: "neo" (neo training checkpoint) or "official" (lyuwenyu/RT-DETR .pth).
    state_dict: neo key names (official keys already renamed; size-bound buffers dropped).
    report: the renames/drops so far; :func:`load_detector_weights` completes it.
    pixel_mean, pixel_std: the input normalisation the weights were trained with (None = /255 only).
    architecture: preset, version and class count read from the keys (None if not an R18..R101 RT-DETR).
    """

    path: Path
    kind: str
    state_dict: dict[str, torch.Tensor]
    report: ConversionReport
    pixel_mean: list[float] | None = None
    pixel_std: list[float] | None = None
    architecture: OfficialArchitecture | None = None


def is_neo_checkpoint(checkpoint: dict[str, Any]) -> bool:
    """True for a Lightning-format neo checkpoint (``state_dict`` keys under net./criterion./postprocessor.)."""
    state = checkpoint.get("state_dict")
    return isinstance(state, dict) and bool(state) and all(k.startswith(NEO_PREFIXES) for k in state)


def read_detector_weights(path: str | Path, prefer: str = "ema", trust_pickle: bool = False) -> DetectorWeights:
    """Read a neo or official checkpoint file into :class:`DetectorWeights`.

    prefer: "ema" (default) or "model"/"raw" — for neo checkpoints "model"/"raw" picks
        ``current_model_state`` (the raw weights) when the run had EMA.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, trust_pickle=trust_pickle)
    if is_neo_checkpoint(checkpoint):
        state = checkpoint["state_dict"]
        imported = checkpoint.get("neo_import") or {}
        source = (f"state_dict (neo checkpoint imported from {imported.get('file')}, {imported.get('state')})"
                  if imported else "state_dict (neo checkpoint, EMA weights when EMA was on)")
        if prefer in ("model", "raw") and isinstance(checkpoint.get("current_model_state"), dict):
            state, source = checkpoint["current_model_state"], "current_model_state (neo checkpoint, raw weights)"
        net_state = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
        net_cfg = ((checkpoint.get("hyper_parameters") or {}).get("model") or {}).get("net") or {}
        try:
            architecture = detect_architecture(net_state)
        except ValueError:  # tiny, HGNetv2 ... : fine for neo checkpoints
            architecture = None
        return DetectorWeights(path, "neo", net_state, ConversionReport(source=source),
                               net_cfg.get("pixel_mean"), net_cfg.get("pixel_std"), architecture)
    official, source = extract_state_dict(checkpoint, "model" if prefer in ("model", "raw") else "ema")
    converted, report = convert_state_dict(official)
    report.source = source
    return DetectorWeights(path, "official", converted, report, None, None, detect_architecture(official))


def fit_normalisation(model_cfg: dict[str, Any], weights: DetectorWeights) -> str | None:
    """Set ``model_cfg["net"]["pixel_mean"/"pixel_std"]`` to the weights' normalisation (official: none, /255
    only). Returns a message when the config changed, else None."""
    net = model_cfg.get("net")
    if not isinstance(net, dict):
        return None
    before = (net.get("pixel_mean"), net.get("pixel_std"))
    after = (weights.pixel_mean, weights.pixel_std)
    if _as_floats(before) == _as_floats(after):
        return None
    net["pixel_mean"], net["pixel_std"] = after
    described = "none (/255 only, the official RT-DETR input)" if after[0] is None else f"mean {after[0]}, std {after[1]}"
    return (f"model.net.pixel_mean/pixel_std set to {described} to match the pretrained weights "
            f"({weights.kind} checkpoint {weights.path.name}); the config had mean {before[0]}, std {before[1]}")


def load_detector_weights(net: torch.nn.Module, weights: DetectorWeights) -> ConversionReport:
    """Load ``weights`` into ``net`` (strict, except class-dependent tensors on a class-count change).

    Raises ValueError naming unexpected / missing / mis-shaped keys and the preset the file needs.
    """
    report = load_converted(net, weights.state_dict, weights.report)
    if report.num_classes is None:
        head = weights.state_dict.get("decoder.enc_score_head.weight")
        report.num_classes = int(head.shape[0]) if head is not None else None
    return report


def log_report(identifier: str, weights: DetectorWeights, report: ConversionReport) -> None:
    """INFO: the whole report; WARNING: the re-initialised tensors, by name (they start untrained)."""
    log.info("pretrained=%s (%s, %s checkpoint):\n%s", identifier, weights.path, weights.kind, report.summary())
    if report.reinitialised:
        log.warning("pretrained=%s has %s classes, the model %s: re-initialised %d class-dependent tensors: %s",
                    identifier, report.num_classes, report.target_num_classes, len(report.reinitialised),
                    ", ".join(report.reinitialised))


def _as_floats(pair: tuple[Any, Any]) -> tuple[Any, Any]:
    return tuple(None if v is None else [round(float(x), 6) for x in v] for v in pair)
