"""Model presets: the files of conf/model/ (the YAML is the source), read without Hydra's app machinery.

A preset is `conf/model/<name>.yaml`; files whose name starts with `_` are bases that presets extend through
their Hydra defaults list (`defaults: [_rtdetr_r_base, _self_]`), never presets themselves.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


def _model_folder() -> Traversable:
    return resources.files("conf") / "model"


PRESETS: tuple[str, ...] = tuple(sorted(
    entry.name.removesuffix(".yaml") for entry in _model_folder().iterdir()
    if entry.name.endswith(".yaml") and not entry.name.startswith("_")
))
# Presets of an official release (RT-DETR v1/v2, D-FINE) whose checkpoints `neo-weights import` converts.
CONVERTIBLE_PRESETS: tuple[str, ...] = tuple(name for name in PRESETS if name.startswith(("rtdetr_", "dfine_")))


def load_preset_config(
    name: str, num_classes: int = 80, overrides: dict[str, Any] | None = None
) -> DictConfig:
    """The resolved `model` node of preset `name` with `data.num_classes` set; the same node Hydra composes
    for `model=<name>`.

    overrides: dotted keys relative to the model node, e.g. {"net.decoder.num_layers": 2}.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; available: {', '.join(PRESETS)}")
    root = OmegaConf.create({"data": {"num_classes": num_classes}, "model": _compose(name, ())})
    for key, value in (overrides or {}).items():
        OmegaConf.update(root, f"model.{key}", value, force_add=True)
    model = root.model
    OmegaConf.resolve(root)
    return model


def _compose(name: str, chain: tuple[str, ...]) -> DictConfig:
    """conf/model/<name>.yaml merged over the entries of its defaults list, in Hydra's order (`_self_`
    where listed, else last). Entries are other files of conf/model/ (`_rtdetr_r_base`), nothing else."""
    path = _model_folder() / f"{name}.yaml"
    if name in chain or not path.is_file():
        why = "includes itself" if name in chain else "is not a file of conf/model/"
        raise ValueError(f"model preset {chain[0] if chain else name!r}: {name!r} {why} "
                         f"(defaults chain: {' -> '.join((*chain, name))})")
    own = OmegaConf.create(path.read_text())
    defaults = own.pop("defaults", ListConfig([]))
    if not isinstance(defaults, ListConfig) or not all(isinstance(entry, str) for entry in defaults):
        raise ValueError(f"conf/model/{name}.yaml: the defaults list may only name other files of conf/model/ "
                         f"and _self_, e.g. [_rtdetr_r_base, _self_]; found {OmegaConf.to_yaml(defaults).strip()}")
    entries = list(defaults) if "_self_" in defaults else [*defaults, "_self_"]
    parts = [own if entry == "_self_" else _compose(entry, (*chain, name)) for entry in entries]
    return OmegaConf.merge(*parts)


def build_preset(name: str, num_classes: int = 80, overrides: dict[str, Any] | None = None):
    """Instantiate (net, criterion, postprocessor) of a preset. Returns a tuple of three nn.Modules."""
    from hydra.utils import instantiate

    cfg = load_preset_config(name, num_classes, overrides)
    return instantiate(cfg.net), instantiate(cfg.criterion), instantiate(cfg.postprocessor)
