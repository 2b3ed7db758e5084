"""Config composition for every group option and every recipe, and the validation layer's errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import conf
from neo.training.config_check import RULES, ConfigError, check_config, config_errors

CONF = Path(conf.__file__).parent
GROUPS = ("data", "model", "optim", "trainer", "callbacks", "logger", "storage", "paths", "debug")


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(*overrides: str):
    with initialize_config_module(version_base="1.3", config_module="conf"):
        return compose(config_name="train", overrides=["paths.root_dir=/tmp/neo-test-root", *overrides])


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_group_option_composes_and_resolves(group: str, option: str) -> None:
    cfg = _compose(f"{group}={option}")
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in ("data", "model", "optim", "trainer", "callbacks", "paths"):
        assert key in plain, f"{group}={option}: {key} missing"
    suffix = f"-debug-{option}" if group == "debug" else ""  # a debug run never shares the real run's folder
    assert plain["paths"]["run_dir"] == f"/tmp/neo-test-root/outputs/runs/default{suffix}"


@pytest.mark.parametrize("recipe", _options("experiment"))
def test_every_recipe_composes_resolves_and_names_its_command(recipe: str) -> None:
    cfg = _compose(f"experiment={recipe}")
    OmegaConf.to_container(cfg, resolve=True)
    assert cfg.run_name == recipe
    header = (CONF / "experiment" / f"{recipe}.yaml").read_text()
    assert f"neo-train experiment={recipe}" in header
    # every rule holds but the dataset path and the GPU (neither COCO nor a GPU is on this machine)
    errors = [e for e in config_errors(cfg) if "does not exist" not in e and "torch sees none" not in e]
    assert errors == []


def test_r50_recipe_matches_seed_002() -> None:
    cfg = _compose("experiment=rtdetr_r50_1080p")
    assert cfg.data.resolution == "1080p" and cfg.data.batch_size == 4
    assert [list(s) for s in cfg.data.train_sizes][0] == [900, 1600] and list(cfg.data.train_sizes[-1]) == [1260, 2240]
    assert cfg.trainer.accumulate_grad_batches == 2 and cfg.trainer.precision == "16-mixed"
    assert cfg.trainer.gradient_clip_val == 0.1 and cfg.trainer.max_epochs == 72
    assert cfg.optim.lr == 1e-4 and list(cfg.optim.schedule.milestones) == [40, 55]
    assert cfg.optim.schedule.gamma == 0.1 and cfg.optim.schedule.warmup == 5
    assert cfg.optim.schedule.warmup_unit == "epoch"


def test_run_dir_is_deterministic_per_run_name() -> None:
    a, b = _compose("run_name=exp1"), _compose("run_name=exp1", "seed=3")
    assert a.paths.run_dir == b.paths.run_dir == "/tmp/neo-test-root/outputs/runs/exp1"
    assert a.paths.checkpoint_dir == "/tmp/neo-test-root/outputs/runs/exp1/checkpoints"


BAD_OVERRIDES = [
    ("optim.lr=0", "optim.lr=0"),
    ("optim.lr=-1e-4", "optim.lr=-0.0001"),
    ("optim.weight_decay=-1", "optim.weight_decay=-1"),
    ("optim.backbone_lr=-1", "optim.backbone_lr=-1"),
    ("optim.backbone_lr_mult=-0.5", "optim.backbone_lr_mult=-0.5"),
    ("optim.betas=[0.9,1.5]", "optim.betas=[0.9, 1.5]"),
    ("optim.schedule.name=poly", "optim.schedule.name='poly'"),
    ("optim.schedule.warmup=-3", "optim.schedule.warmup=-3"),
    ("optim.schedule.warmup_unit=hours", "optim.schedule.warmup_unit='hours'"),
    ("optim.schedule.milestones=[50,40]", "optim.schedule.milestones=[50, 40]"),
    ("optim.schedule.milestones=[100]", "go past trainer.max_epochs"),
    ("optim.schedule.gamma=2", "optim.schedule.gamma=2"),
    ("optim.schedule.min_lr_ratio=1.5", "optim.schedule.min_lr_ratio=1.5"),
    ("trainer.precision=fp8", "trainer.precision='fp8'"),
    ("trainer.precision=16-mixed", "16-mixed is for trainer=gpu"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1"),
    ("trainer.gradient_clip_algorithm=max", "trainer.gradient_clip_algorithm='max'"),
    ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0"),
    ("data.batch_size=0", "data.batch_size=0"),
    ("data.eval_batch_size=-2", "data.eval_batch_size=-2"),
    ("data.num_workers=-1", "data.num_workers=-1"),
    ("data.resolution=1920x1200", "Nearest valid 16:9 size"),
    ("data.train_sizes=[[720,1280],[600,800]]", "data.train_sizes[1]"),
    ("data.train_scales=[1.0,-1]", "data.train_scales=[1.0, -1]"),
    ("data.no_aug_epochs=-1", "data.no_aug_epochs=-1"),
    ("data.num_classes=0", "data.num_classes=0"),
    ("model.net.num_classes=7", "differs from data.num_classes"),
    ("run_name=a/b", "run_name='a/b'"),
    ("seed=-5", "seed=-5"),
    ("ckpt_path=/nonexistent/x.ckpt", "ckpt_path='/nonexistent/x.ckpt' does not exist"),
    ("callbacks.ema.decay=1.5", "callbacks.ema.decay=1.5"),
]


@pytest.mark.parametrize("override,expected", BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_bad_override_gets_a_named_error(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_config(_compose(override))
    message = str(info.value)
    assert expected in message and "Fix:" in message or "Nearest valid" in message, message


def test_missing_dataset_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.train_annotations=.*does not exist"):
        check_config(_compose("data=coco", f"data.root={tmp_path}/nowhere"))


def test_default_config_is_valid_and_rules_are_many() -> None:
    check_config(_compose())
    assert len(RULES) >= 20
