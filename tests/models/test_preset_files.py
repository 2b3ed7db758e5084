"""conf/model/ is the preset list: the files (not the `_` bases), composed alike by Hydra and the loader."""

from __future__ import annotations

from importlib import resources

import pytest
from omegaconf import OmegaConf

from neo.models.rtdetr import PRESETS, load_preset_config
from tests.support.overrides import compose_train

R_FAMILY = ("rtdetr_r18", "rtdetr_r34", "rtdetr_r50m", "rtdetr_r50", "rtdetr_r101")
HGNETV2_FAMILY = ("rtdetr_hgnetv2_l", "rtdetr_hgnetv2_x", "rtdetr_hgnetv2_h")
EXTENDED = [(name, "_rtdetr_r_base", "net.backbone.depth") for name in R_FAMILY] + \
           [(name, "_rtdetr_hgnetv2_base", "net.backbone.name") for name in HGNETV2_FAMILY]


def test_presets_are_the_files_of_conf_model_without_bases():
    files = {entry.name for entry in (resources.files("conf") / "model").iterdir()}
    assert {"_rtdetr_r_base.yaml", "_rtdetr_hgnetv2_base.yaml"} <= files
    assert not any(name.startswith("_") for name in PRESETS)
    assert {f"{name}.yaml" for name in PRESETS} == {name for name in files
                                                    if name.endswith(".yaml") and not name.startswith("_")}
    assert {"tiny", *R_FAMILY, *HGNETV2_FAMILY, "hgnetv2_l", "dfine_n", "dfine_x"} <= set(PRESETS)


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


@pytest.mark.parametrize("name, base_name, stated", EXTENDED)
def test_family_files_state_only_what_differs_from_their_base(name, base_name, stated):
    folder = resources.files("conf") / "model"
    own = OmegaConf.to_container(OmegaConf.create((folder / f"{name}.yaml").read_text()))
    base = OmegaConf.create((folder / f"{base_name}.yaml").read_text())
    assert own.pop("defaults") == [base_name, "_self_"]
    restated = {key for key, value in _leaves(own) if OmegaConf.select(base, key) == value}  # "???" reads None
    assert restated == set()
    assert {"name", stated} <= dict(_leaves(own)).keys()  # what the base leaves "???"


def test_a_base_is_not_a_preset():
    with pytest.raises(ValueError, match=r"unknown model preset '_rtdetr_r_base'; available: .*rtdetr_r50"):
        load_preset_config("_rtdetr_r_base")


@pytest.mark.parametrize("files, message", [
    ({"loop": "defaults: [_a]\nname: loop\n", "_a": "defaults: [_b]\n", "_b": "defaults: [_a]\n"},
     r"'_a' includes itself \(defaults chain: loop -> _a -> _b -> _a\)"),
    ({"loop": "defaults: [_gone, _self_]\nname: loop\n"}, r"'_gone' is not a file of conf/model/"),
    ({"loop": "defaults:\n  - /data: coco\nname: loop\n"}, r"may only name other files of conf/model/ and _self_"),
])
def test_a_defaults_list_the_loader_cannot_follow_is_named(tmp_path, monkeypatch, files, message):
    import neo.models.rtdetr.presets as presets

    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    monkeypatch.setattr(presets, "_model_folder", lambda: tmp_path)
    monkeypatch.setattr(presets, "PRESETS", ("loop",))
    with pytest.raises(ValueError, match=message):
        presets.load_preset_config("loop")


def test_self_first_lets_the_base_win(tmp_path, monkeypatch):
    import neo.models.rtdetr.presets as presets

    (tmp_path / "_base.yaml").write_text("name: base\nnet: {depth: 50, width: 64}\n")
    (tmp_path / "late.yaml").write_text("defaults: [_base]\nname: late\nnet: {depth: 18}\n")  # _self_ last
    (tmp_path / "early.yaml").write_text("defaults: [_self_, _base]\nname: early\nnet: {depth: 18}\n")
    monkeypatch.setattr(presets, "_model_folder", lambda: tmp_path)
    monkeypatch.setattr(presets, "PRESETS", ("early", "late"))
    assert OmegaConf.to_container(presets.load_preset_config("late")) == {"name": "late", "net": {"depth": 18, "width": 64}}
    assert OmegaConf.to_container(presets.load_preset_config("early")) == {"name": "base",
                                                                           "net": {"depth": 50, "width": 64}}
