"""Hydra overrides for short CPU runs on the session's synthetic dataset, and in-process config composition."""

from __future__ import annotations

from pathlib import Path

TOY_MODEL = {
    "net": {"_target_": "tests.training.toy_detector.ToyNet", "num_classes": 3, "noise": 0.1},
    "criterion": {"_target_": "tests.training.toy_detector.ToyCriterion"},
    "postprocessor": {"_target_": "tests.training.toy_detector.ToyPostprocessor"},
}


def train_overrides(root: Path | str, out: Path | str, *extra: str) -> list[str]:
    """Hydra overrides for a short CPU run on ``root`` (from the ``synth_root`` fixture) writing under ``out``."""
    return [
        f"paths.root_dir={out}",
        f"data.root={root}",
        "data.synthetic=null",
        "data.num_classes=3",
        "data.resolution=320x180",
        "data.train_scales=[1.0]",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "data.no_aug_epochs=0",
        "trainer=cpu",
        "trainer.precision=32-true",  # the suite's numbers do not depend on the CPU kind (auto: bf16 on AVX512-BF16)
        "channels_last=false",
        "trainer.num_sanity_val_steps=0",
        "print_config=false",
        "torch_threads=1",
        "callbacks.progress=null",
        *extra,
    ]


def compose_train(overrides: list[str], toy: bool = False):
    """The ``train`` config composed in-process (no ``@hydra.main``); ``toy`` swaps in the toy detector."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf, open_dict

    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose(config_name="train", overrides=(["~model"] if toy else []) + overrides)
    if toy:
        with open_dict(cfg):
            cfg.model = OmegaConf.create(TOY_MODEL)
    return cfg
