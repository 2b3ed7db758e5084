"""Official RT-DETR checkpoint (lyuwenyu/RT-DETR v1 / v2 ``.pth``) or D-FINE checkpoint (Peterande/D-FINE,
layout "dfine": :mod:`neo.models.dfine.convert`) -> neo training checkpoint.

The written file is Lightning-format like every neo checkpoint (``state_dict`` with ``net.*`` keys,
``hyper_parameters`` of plain containers), so ``neo-train pretrained=``, ``neo-eval``, ``neo-predict`` and
``neo-export`` take it as is. Its model config is the matching neo preset with the official input
normalisation (pixel_mean/pixel_std null: images / 255 only) and the checkpoint's class count; its data
config gives the 16:9 eval/predict size (640x360: the official 640 width) and, for 80 classes, COCO 2017,
whose class names and category ids it carries. Reading and writing go through
:mod:`neo.checkpoints.format`; both the v1 and the released v2 layouts import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from neo.checkpoints.format import (
    CheckpointError,
    checkpoint_content,
    read_official,
    write_checkpoint,
)
from neo.data.coco_categories import COCO_CATEGORY_IDS, COCO_CLASS_NAMES
from neo.models.rtdetr import CONVERTIBLE_PRESETS, load_preset_config
from neo.models.rtdetr.convert import ConversionReport, OfficialArchitecture, load_converted
from neo.models.rtdetr.sampling_variants import DSP_NAME
from neo.training.module import RTDETRModule

# Official models train and validate at 640x640; the 16:9 canvas of the same width keeps their scale.
DEFAULT_EVAL_SIZE = "640x360"
# Variants a user states (the tensors cannot show them) -> the decoder's cross-attention sampling.
STATED_VARIANTS = {"default": "bilinear", "dsp": "discrete"}


@dataclass
class ImportResult:
    """What ``import_official`` did: where it wrote, for which preset, and the per-key report."""

    output: Path
    preset: str
    architecture: OfficialArchitecture
    report: ConversionReport
    num_parameters: int
    class_names: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)  # e.g. ["sp2", "dsp", "position: official"]
    sampling: str = "bilinear"  # the decoder's cross-attention sampling ("discrete" for dsp)
    sampling_stated: bool = False  # True when the user (or the registry entry) named the variant


def preset_model_config(preset: str, num_classes: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plain model config of ``preset`` with ``num_classes``, the official normalisation (none, /255 only),
    the official position-embedding layout the checkpoint was trained with, and ``overrides`` (dotted keys
    below the model node, e.g. the detected ``net.decoder.num_points``)."""
    if preset not in CONVERTIBLE_PRESETS:
        raise ValueError(f"preset={preset!r} cannot hold official RT-DETR weights; use one of "
                         f"{', '.join(CONVERTIBLE_PRESETS)} (or leave it out to detect it from the keys)")
    cfg = load_preset_config(preset, num_classes, {"net.pixel_mean": None, "net.pixel_std": None,
                                                   "net.encoder.position_embedding": "official",
                                                   **(overrides or {})})
    return OmegaConf.to_container(cfg, resolve=True)


def variant_overrides(architecture: OfficialArchitecture, sampling: str = "bilinear") -> dict[str, Any]:
    """Model-config overrides for what the file is beyond the preset: the sampling points per level (sp1/sp2/sp3,
    from the tensors) when they differ from the official 4, and discrete sampling (dsp, stated by the user)."""
    overrides: dict[str, Any] = {}
    if architecture.sampling_points_variant is not None:
        overrides["net.decoder.num_points"] = list(architecture.num_points)
    if sampling != "bilinear":
        overrides["net.decoder.sampling"] = sampling
    return overrides


def decide_sampling(variant: str | None, *names: str | None) -> tuple[str, bool]:
    """(sampling, stated) for ``variant`` ("default", "dsp" or None = not stated).

    dsp files hold the same names and shapes as bilinear ones, so nothing in the tensors tells them apart. Not
    stated, a file or registry name containing "dsp" is refused (CheckpointError) rather than imported as
    bilinear; any other file is taken as bilinear (the report says so)."""
    if variant is not None:
        if variant not in STATED_VARIANTS:
            raise CheckpointError(f"variant={variant!r} is unknown; use one of {', '.join(STATED_VARIANTS)}")
        return STATED_VARIANTS[variant], True
    named = next((n for n in names if n and DSP_NAME.search(Path(n).name)), None)
    if named is not None:
        raise CheckpointError(
            f"import {named}: the name says dsp (discrete sampling), which the file's tensors cannot show (a dsp "
            "checkpoint has the names and shapes of a bilinear one). Fix: state it: neo-weights import ... "
            "--variant dsp (or --variant default if the file samples bilinearly).")
    return "bilinear", False


def default_optim_config() -> dict[str, Any]:
    """``conf/optim/default.yaml`` as a plain dict (neo-train replaces it with the run's own)."""
    text = (resources.files("conf") / "optim" / "default.yaml").read_text()
    return OmegaConf.to_container(OmegaConf.create(text), resolve=True)


def class_labels(num_classes: int) -> tuple[list[str], list[int]]:
    """(class names, category ids) by contiguous label: COCO's for 80 classes, else class_<i> / i + 1."""
    if num_classes == len(COCO_CLASS_NAMES):
        return list(COCO_CLASS_NAMES), list(COCO_CATEGORY_IDS)
    return [f"class_{i}" for i in range(num_classes)], list(range(1, num_classes + 1))


def default_data_config(num_classes: int, eval_size: str = DEFAULT_EVAL_SIZE) -> dict[str, Any]:
    """The data config an imported checkpoint carries: the 16:9 eval/predict size and, for 80 classes, COCO
    2017 at its default place (``${paths.data_dir}/coco``), so ``neo-eval`` and ``neo-predict`` need no extra flags."""
    data: dict[str, Any] = {"num_classes": num_classes, "resolution": eval_size, "eval_size": eval_size}
    if num_classes == len(COCO_CLASS_NAMES):
        text = (resources.files("conf") / "data" / "coco.yaml").read_text()
        coco = OmegaConf.create(text)
        coco.max_epochs = None
        coco.seed = 0  # root stays ${paths.data_dir}/coco: neo-eval resolves it with its own paths
        data = {**OmegaConf.to_container(coco, resolve=False), **data}
    return data


def import_official(
    source: str | Path,
    output: str | Path,
    preset: str | None = None,
    prefer: str = "ema",
    trust_pickle: bool = False,
    origin: str | None = None,
    eval_size: str = DEFAULT_EVAL_SIZE,
    variant: str | None = None,
    fold_frozen_norm: bool = True,
) -> ImportResult:
    """Convert an official checkpoint file (v1 or v2 layout) into a neo checkpoint at ``output``.

    preset: neo preset to load into (None: detected from the keys and shapes).
    prefer: "ema" (``ema.module`` when present, else ``model``) or "model".
    origin: how the user named the source (registry name, URL), recorded in the checkpoint.
    eval_size: the 16:9 size neo-eval / neo-predict / neo-export use by default (``data.eval_size``).
    variant: what the tensors cannot show: "dsp" (discrete sampling), "default" (bilinear) or None (not
        stated: bilinear, and a source named ``*dsp*`` is refused). sp1/sp2/sp3 are read from the tensors.
    fold_frozen_norm: False keeps a PResNet backbone's frozen norms unfolded (conv -> norm as upstream: exact
        outputs, slower; ``model.net.backbone.fold_frozen_norm`` in the written config).
    Raises CheckpointError (naming the file) on an unreadable file and on any key that does not map
    (unexpected, missing or mis-shaped); nothing is written then.
    """
    source, output = Path(source), Path(output)
    sampling, stated = decide_sampling(variant, origin, source.name)
    official = read_official(source, prefer, key="import", value=origin, trust_pickle=trust_pickle)
    architecture = official.architecture
    preset = preset or architecture.preset
    overrides = variant_overrides(architecture, sampling)
    if not fold_frozen_norm and preset in CONVERTIBLE_PRESETS and \
            "fold_frozen_norm" in load_preset_config(preset).net.backbone:  # HGNetv2 (timm) never folds
        overrides["net.backbone.fold_frozen_norm"] = False
    try:
        model_cfg = preset_model_config(preset, architecture.num_classes, overrides)
    except ValueError as exc:
        raise CheckpointError(f"import {origin or source}: {exc}") from None
    names, category_ids = class_labels(architecture.num_classes)
    variants = detected_variants(architecture, sampling, model_cfg["net"]["backbone"])
    imported = {"source": origin or str(source), "file": source.name, "state": official.picked,
                "version": architecture.version, "preset": preset, "variants": variants}
    data_cfg = default_data_config(architecture.num_classes, eval_size)
    module = RTDETRModule(model=model_cfg, optim=default_optim_config(), class_names=names,
                          label_to_category_id=category_ids,
                          run_config={"model": model_cfg, "data": data_cfg, "imported_from": imported})
    report = official.report
    try:
        load_converted(module.net, official.converted, report)
    except ValueError as exc:  # another preset, an unknown key: the message names them and the right preset
        raise CheckpointError(f"import {origin or source}: {source} ({architecture.version} layout, "
                              f"{official.picked}) does not load into model={preset}: {exc}") from None
    if report.reinitialised:  # cannot happen with the checkpoint's own class count; guard the invariant
        raise CheckpointError(f"import left class tensors unloaded: {report.reinitialised}")
    imported.update(renamed=dict(report.renamed), dropped=dict(report.dropped))
    write_checkpoint(output, checkpoint_content(module, neo_import=imported))
    return ImportResult(output, preset, architecture, report, sum(p.numel() for p in module.net.parameters()),
                        names, variants, sampling, stated)


def detected_variants(architecture: OfficialArchitecture, sampling: str, backbone: dict[str, Any]) -> list[str]:
    """Names of what the imported model is beyond its preset, for the report and the checkpoint record.

    backbone: the written ``model.net.backbone`` config (frozen norms, folded or not)."""
    variants = [architecture.sampling_points_variant] if architecture.sampling_points_variant else []
    if architecture.backbone == "hgnetv2-official":
        variants.append("hgnetv2-official")  # official HGNetv2 names, mapped onto timm's layers
    if sampling == "discrete":
        variants.append("dsp")
    variants.append("position: official")  # every official model builds the x-major embedding
    if backbone.get("freeze_norm"):  # PResNet folds unless told not to; timm backbones run conv -> norm
        variants.append(f"frozen-norm: {'folded' if backbone.get('fold_frozen_norm', False) else 'unfolded'}")
    return variants
