"""Build a preset from conf/model/<name>.yaml without Hydra's app machinery (the YAML is the source)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from omegaconf import DictConfig, OmegaConf

PRESETS = (
    "tiny",
    "rtdetr_r18",
    "rtdetr_r34",
    "rtdetr_r50m",
    "rtdetr_r50",
    "rtdetr_r101",
    "hgnetv2_l",
    "hgnetv2_x",
    "rtdetr_hgnetv2_l",
    "rtdetr_hgnetv2_x",
    "rtdetr_hgnetv2_h",
    "dfine_n",
    "dfine_s",
    "dfine_m",
    "dfine_l",
    "dfine_x",
)


def load_preset_config(
    name: str, num_classes: int = 80, overrides: dict[str, Any] | None = None
) -> DictConfig:
    """The resolved `model` node of preset `name` with `data.num_classes` set.

    overrides: dotted keys relative to the model node, e.g. {"net.decoder.num_layers": 2}.
    """
    path = resources.files("conf") / "model" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown model preset {name!r}; available: {', '.join(PRESETS)}")
    root = OmegaConf.create({"data": {"num_classes": num_classes}, "model": OmegaConf.load(str(path))})
    for key, value in (overrides or {}).items():
        OmegaConf.update(root, f"model.{key}", value, force_add=True)
    model = root.model
    OmegaConf.resolve(root)
    return model


def build_preset(name: str, num_classes: int = 80, overrides: dict[str, Any] | None = None):
    """Instantiate (net, criterion, postprocessor) of a preset. Returns a tuple of three nn.Modules."""
    from hydra.utils import instantiate

    cfg = load_preset_config(name, num_classes, overrides)
    return instantiate(cfg.net), instantiate(cfg.criterion), instantiate(cfg.postprocessor)
