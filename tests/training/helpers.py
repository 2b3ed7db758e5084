"""Compose test configs in-process (no @hydra.main) and swap in the toy detector when asked."""

from __future__ import annotations

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf, open_dict

TOY_MODEL = {
    "net": {"_target_": "tests.training.toy_detector.ToyNet", "num_classes": 3, "noise": 0.1},
    "criterion": {"_target_": "tests.training.toy_detector.ToyCriterion"},
    "postprocessor": {"_target_": "tests.training.toy_detector.ToyPostprocessor"},
}


def compose_train(overrides: list[str], toy: bool = False):
    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose(config_name="train", overrides=(["~model"] if toy else []) + overrides)
    if toy:
        with open_dict(cfg):
            cfg.model = OmegaConf.create(TOY_MODEL)
    return cfg
