"""Pretrained weights: the whole detector (``pretrained=``) and a PResNet backbone's own file
(``model.net.backbone.pretrained``, read by :func:`build_net`).

Whole-detector weights: read a neo or official RT-DETR checkpoint, fit the model config's input
normalisation to it, and load it into the detector.

Two kinds of file are accepted:
  * a neo training checkpoint (Lightning format, ``state_dict`` keys ``net.*``; its ``state_dict`` holds
    the EMA weights when EMA was on), e.g. one written by ``neo-weights import``;
  * an official lyuwenyu/RT-DETR ``.pth`` (v1 or v2 names; ``ema.module`` preferred over ``model``).
Both are read by :mod:`neo.checkpoints.format`.
A different class count re-initialises only the class-dependent tensors (see
:data:`neo.models.rtdetr.convert.CLASS_DEPENDENT`); the report names them.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neo.checkpoints.format import (
    BACKBONE_KEY,
    CheckpointError,
    NeoCheckpoint,
    is_neo,
    load_file,
    read_official,
)
from neo.models.rtdetr.convert import (
    ConversionReport,
    OfficialArchitecture,
    detect_architecture,
    load_converted,
)
from neo.models.rtdetr.presnet import PResNet
from neo.models.rtdetr.sampling_variants import DSP_NAME

log = logging.getLogger(__name__)

# Keys in cfg.model that hold a weights identifier to resolve through neo.storage before instantiation.
PRETRAINED_KEYS = ("net.backbone_weights", "net.pretrained", "net.backbone.pretrained", "net.backbone.weights")


@dataclass
class DetectorWeights:
    """Detector weights read from a file, ready to load into ``RTDETRModule.net``.

    kind: "neo" (neo training checkpoint) or "official" (lyuwenyu/RT-DETR .pth).
    state_dict: neo key names (official keys already renamed; size-bound buffers dropped).
    report: the renames/drops so far; :func:`load_detector_weights` completes it.
    pixel_mean, pixel_std: the input normalisation the weights were trained with (None = /255 only).
    architecture: preset, layout and class count read from the keys (None if not an R18..R101 RT-DETR).
    """

    path: Path
    kind: str
    state_dict: dict[str, torch.Tensor]
    report: ConversionReport
    pixel_mean: list[float] | None = None
    pixel_std: list[float] | None = None
    architecture: OfficialArchitecture | None = None
    model_name: str | None = None  # the preset a neo checkpoint was trained with


def read_detector_weights(path: str | Path, prefer: str = "ema", key: str = "pretrained",
                          value: Any = None) -> DetectorWeights:
    """Read a neo or official checkpoint file into :class:`DetectorWeights` (through
    :mod:`neo.checkpoints.format`; a bad file raises its one-paragraph CheckpointError).

    prefer: "ema" (default) or "raw"/"model": for neo checkpoints the raw weights when the run had EMA,
        for official files ``model`` rather than ``ema.module``.
    """
    path = Path(path)
    checkpoint = load_file(path, key, value)
    if is_neo(checkpoint):
        neo = NeoCheckpoint(path, checkpoint)
        state, label = neo.net_weights("raw" if prefer in ("model", "raw") else "ema")
        source = (f"state_dict (neo checkpoint imported from {neo.imported.get('file')}, {neo.imported.get('state')})"
                  if neo.imported else f"neo checkpoint, {label} weights")
        net_cfg = neo.model_config.get("net") or {}
        try:
            architecture = detect_architecture(state)
        except ValueError:  # tiny, HGNetv2 ... : fine for neo checkpoints
            architecture = None
        return DetectorWeights(path, "neo", state, ConversionReport(source=source), net_cfg.get("pixel_mean"),
                               net_cfg.get("pixel_std"), architecture, neo.model_config.get("name"))
    official = read_official(path, "model" if prefer in ("model", "raw") else "ema", key=key, value=value,
                             checkpoint=checkpoint)
    return DetectorWeights(path, "official", official.converted, official.report, None, None, official.architecture)


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

    Raises CheckpointError naming the file, the unexpected / missing / mis-shaped keys and the preset the
    file needs.
    """
    try:
        report = load_converted(net, weights.state_dict, weights.report)
    except ValueError as exc:
        trained = f" trained with model={weights.model_name}" if weights.model_name else ""
        fix = f"use model={weights.model_name}" if weights.model_name else "pick the model preset named above"
        raise CheckpointError(f"pretrained={str(weights.path)!r} ({weights.kind} checkpoint{trained}): {exc} "
                              f"Fix: {fix}, or another pretrained file.") from None
    if report.num_classes is None:
        head = weights.state_dict.get("decoder.enc_score_head.weight")
        report.num_classes = int(head.shape[0]) if head is not None else None
    sampling = {getattr(m, "sampling", None) for m in net.modules() if hasattr(m, "num_points_scale")}
    if DSP_NAME.search(weights.path.name) and "discrete" not in sampling:
        log.warning("pretrained=%s is named dsp (a discrete-sampling model) but this model samples bilinearly; "
                    "the weights start a bilinear model. To continue as trained: model.net.decoder.sampling=discrete",
                    weights.path.name)
    return report


def log_report(identifier: str, weights: DetectorWeights, report: ConversionReport) -> None:
    """INFO: the whole report; WARNING: the re-initialised tensors, by name (they start untrained)."""
    log.info("pretrained=%s (%s, %s checkpoint):\n%s", identifier, weights.path, weights.kind, report.summary())
    if report.reinitialised:
        log.warning("pretrained=%s has %s classes, the model %s: re-initialised %d class-dependent tensors: %s",
                    identifier, report.num_classes, report.target_num_classes, len(report.reinitialised),
                    ", ".join(report.reinitialised))


def build_net(net_cfg: Mapping[str, Any]) -> torch.nn.Module:
    """Instantiate ``model.net`` (a plain dict with ``_target_``); a PResNet backbone's weights file
    (``model.net.backbone.pretrained``, a local path) is read here through :func:`neo.checkpoints.format.load_file`
    and handed to :meth:`PResNet.load_pretrained_state`. Other backbones (``TimmBackbone``) take their file as is
    (timm reads it). Raises CheckpointError for a file that cannot be read, ValueError for weights of another
    backbone."""
    from hydra.utils import get_class, instantiate

    net_cfg = copy.deepcopy(dict(net_cfg))
    backbone = net_cfg.get("backbone")
    weights_file = None
    if isinstance(backbone, dict) and "_target_" in backbone and backbone.get("pretrained") is not None \
            and issubclass(get_class(str(backbone["_target_"])), PResNet):
        weights_file = backbone.pop("pretrained")
    net = instantiate(net_cfg, _convert_="all")
    if weights_file:
        state = backbone_state(load_file(weights_file, key=BACKBONE_KEY))
        net.backbone.load_pretrained_state(state, source=str(weights_file))
    return net


def backbone_state(checkpoint: Mapping[str, Any]) -> Mapping[str, Any]:
    """The state dict inside a backbone weights file: ``ema`` (its ``module``), ``model`` or ``state_dict`` when
    present (first found), else the file's top level."""
    for key in ("ema", "model", "state_dict"):
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping):
            return inner.get("module", inner) if key == "ema" else inner
    return checkpoint


def _as_floats(pair: tuple[Any, Any]) -> tuple[Any, Any]:
    return tuple(None if v is None else [round(float(x), 6) for x in v] for v in pair)
