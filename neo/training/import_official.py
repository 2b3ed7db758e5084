"""Official RT-DETR checkpoint (lyuwenyu/RT-DETR v1 / v2 ``.pth``) -> neo training checkpoint.

The written file is Lightning-format like every neo checkpoint (``state_dict`` with ``net.*`` keys,
``hyper_parameters`` of plain containers), so ``neo-train pretrained=``, ``neo-eval``, ``neo-predict`` and
``neo-export`` take it as is. Its model config is the matching neo preset with the official input
normalisation (pixel_mean/pixel_std null: images / 255 only) and the checkpoint's class count;
80-class checkpoints carry the COCO class names and category ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import lightning
import torch
from omegaconf import OmegaConf

from neo.data.coco_categories import COCO_CATEGORY_IDS, COCO_CLASS_NAMES
from neo.files import atomic_path
from neo.models.rtdetr import PRESETS, load_preset_config
from neo.models.rtdetr.convert import (
    ConversionReport,
    OfficialArchitecture,
    convert_state_dict,
    detect_architecture,
    extract_state_dict,
    load_converted,
    read_checkpoint,
)
from neo.training.module import RTDETRModule

CONVERTIBLE_PRESETS = tuple(p for p in PRESETS if p.startswith("rtdetr_r"))


@dataclass
class ImportResult:
    """What ``import_official`` did: where it wrote, for which preset, and the per-key report."""

    output: Path
    preset: str
    architecture: OfficialArchitecture
    report: ConversionReport
    num_parameters: int
    class_names: list[str] = field(default_factory=list)


def preset_model_config(preset: str, num_classes: int) -> dict[str, Any]:
    """Plain model config of ``preset`` with ``num_classes`` and the official normalisation (none, /255 only)."""
    if preset not in CONVERTIBLE_PRESETS:
        raise ValueError(f"preset={preset!r} cannot hold official RT-DETR weights; use one of "
                         f"{', '.join(CONVERTIBLE_PRESETS)} (or leave it out to detect it from the keys)")
    cfg = load_preset_config(preset, num_classes, {"net.pixel_mean": None, "net.pixel_std": None})
    return OmegaConf.to_container(cfg, resolve=True)


def default_optim_config() -> dict[str, Any]:
    """``conf/optim/default.yaml`` as a plain dict (neo-train replaces it with the run's own)."""
    text = (resources.files("conf") / "optim" / "default.yaml").read_text()
    return OmegaConf.to_container(OmegaConf.create(text), resolve=True)


def class_labels(num_classes: int) -> tuple[list[str], list[int]]:
    """(class names, category ids) by contiguous label: COCO's for 80 classes, else class_<i> / i + 1."""
    if num_classes == len(COCO_CLASS_NAMES):
        return list(COCO_CLASS_NAMES), list(COCO_CATEGORY_IDS)
    return [f"class_{i}" for i in range(num_classes)], list(range(1, num_classes + 1))


def import_official(
    source: str | Path,
    output: str | Path,
    preset: str | None = None,
    prefer: str = "ema",
    trust_pickle: bool = False,
    origin: str | None = None,
) -> ImportResult:
    """Convert an official checkpoint file into a neo checkpoint at ``output``.

    preset: neo preset to load into (None: detected from the keys and shapes).
    prefer: "ema" (``ema.module`` when present, else ``model``) or "model".
    origin: how the user named the source (registry name, URL), recorded in the checkpoint.
    Raises ValueError on any key that does not map (unexpected, missing or mis-shaped), naming it.
    """
    source, output = Path(source), Path(output)
    official, picked = extract_state_dict(read_checkpoint(source, trust_pickle), prefer)
    architecture = detect_architecture(official)
    preset = preset or architecture.preset
    model_cfg = preset_model_config(preset, architecture.num_classes)
    names, category_ids = class_labels(architecture.num_classes)
    imported = {"source": origin or str(source), "file": source.name, "state": picked,
                "version": architecture.version, "preset": preset}
    module = RTDETRModule(model=model_cfg, optim=default_optim_config(), class_names=names,
                          label_to_category_id=category_ids,
                          run_config={"model": model_cfg, "imported_from": imported})
    converted, report = convert_state_dict(official)
    report.source = picked
    load_converted(module.net, converted, report)
    if report.reinitialised:  # cannot happen with the checkpoint's own class count; guard the invariant
        raise ValueError(f"import left class tensors unloaded: {report.reinitialised}")
    imported.update(renamed=dict(report.renamed), dropped=dict(report.dropped))
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": lightning.__version__,
        "neo_import": imported,
    }
    with atomic_path(output) as tmp:  # no half-written checkpoint on failure
        torch.save(checkpoint, tmp)
    _verify(output, module)
    return ImportResult(output, preset, architecture, report,
                        sum(p.numel() for p in module.net.parameters()), names)


def _verify(output: Path, module: RTDETRModule) -> None:
    """Re-read the file as neo-eval does (weights_only) and load it strictly into the module."""
    written = torch.load(str(output), map_location="cpu", weights_only=True)
    module.load_state_dict(written["state_dict"], strict=True)
