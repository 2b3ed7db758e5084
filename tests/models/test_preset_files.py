"""conf/model/ is the preset list: the files (not the `_` bases), composed alike by Hydra and the loader."""

from __future__ import annotations

from importlib import resources

import pytest
from omegaconf import OmegaConf

from neo.models.rtdetr import PRESETS, load_preset_config
from tests.support.overrides import compose_train

R_FAMILY = ("rtdetr_r18", "rtdetr_r34", "rtdetr_r50m", "rtdetr_r50", "rtdetr_r101")


def test_presets_are_the_files_of_conf_model_without_bases():
    files = {entry.name for entry in (resources.files("conf") / "model").iterdir()}
    assert "_rtdetr_r_base.yaml" in files and "_rtdetr_r_base" not in PRESETS
    assert {f"{name}.yaml" for name in PRESETS} == {name for name in files
                                                    if name.endswith(".yaml") and not name.startswith("_")}
    assert {"tiny", *R_FAMILY, "hgnetv2_l", "rtdetr_hgnetv2_h", "dfine_n", "dfine_x"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_hydra_and_the_loader_compose_the_same_model(name):
    composed = compose_train([f"model={name}", "data.num_classes=7"]).model
    hydra_model = OmegaConf.to_container(composed, resolve=True)
    loaded = OmegaConf.to_container(load_preset_config(name, num_classes=7), resolve=True)
    assert loaded == hydra_model
    assert list(loaded["net"]) == list(hydra_model["net"])  # same key order, so saved configs read the same
    assert loaded["name"] == name


def _leaves(node, prefix=""):
    """Dotted key -> value of every leaf of a plain dict."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("name", R_FAMILY)
def test_r_family_files_state_only_what_differs_from_the_base(name):
    folder = resources.files("conf") / "model"
    own = OmegaConf.to_container(OmegaConf.create((folder / f"{name}.yaml").read_text()))
    base = OmegaConf.create((folder / "_rtdetr_r_base.yaml").read_text())
    assert own.pop("defaults") == ["_rtdetr_r_base", "_self_"]
    restated = {key for key, value in _leaves(own) if OmegaConf.select(base, key) == value}  # "???" reads None
    assert restated == set()
    assert {"name", "net.backbone.depth"} <= dict(_leaves(own)).keys()


def test_a_base_is_not_a_preset():
    with pytest.raises(ValueError, match=r"unknown model preset '_rtdetr_r_base'; available: .*rtdetr_r50"):
        load_preset_config("_rtdetr_r_base")
