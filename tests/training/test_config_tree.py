"""Config composition for every group option and every recipe, and the validation layer's errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import conf
from neo.config import check as config_check
from neo.config.check import RULES, ConfigError, check_config, config_errors

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
    ("trainer.precision=16-mixed", "16-mixed is for trainer=gpu"),             # auto accelerator, no GPU here
    ("trainer=cpu trainer.precision=16", "trainer.precision=16 is fp16"),        # an alias, still fp16 on a CPU
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
    ("+optim.lrr=1e-3", "optim.lrr is not a setting that neo reads, so it would be ignored. Fix: did you mean optim.lr?"),
    ("+optim.schedule.warmpu=5", "did you mean optim.schedule.warmup?"),
    ("+data.batchsize=8", "did you mean data.batch_size?"),
]


@pytest.mark.parametrize("override,expected", BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_bad_override_gets_a_named_error(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_config(_compose(*override.split()))
    message = str(info.value)
    assert expected in message and "Fix:" in message or "Nearest valid" in message, message
    assert message.count("\n  - ") == 1, message  # this override, and only it, is reported


def test_missing_dataset_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.train_annotations=.*does not exist"):
        check_config(_compose("data=coco", f"data.root={tmp_path}/nowhere"))


def test_default_config_is_valid_and_the_checker_keeps_only_cross_key_rules() -> None:
    assert check_config(_compose()) == []
    assert [rule.__name__ for rule in RULES] == [
        "check_num_classes", "check_milestones_fit_run", "check_precision_fits_accelerator", "check_storage_choice",
        "check_fused_fits_clipping"]


@pytest.mark.parametrize("override", ["trainer.precision=16", "trainer.precision='16'", "trainer.precision=32",
                                      "trainer.precision=bf16", "trainer.precision=bf16-mixed", "trainer.precision=64",
                                      "trainer.precision=auto", "trainer=gpu trainer.precision=16"])
def test_lightning_precision_aliases_are_accepted(override: str) -> None:
    cfg = _compose(*override.split())
    assert config_errors(cfg, machine=False) == []


def test_no_aug_epochs_longer_than_the_run_is_clamped_with_a_warning(caplog) -> None:
    cfg = _compose("experiment=cpu_demo", "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1")
    assert cfg.data.no_aug_epochs == 2
    with caplog.at_level("WARNING", logger=config_check.__name__):
        warnings = check_config(cfg)
    assert cfg.data.no_aug_epochs == 1
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("data.no_aug_epochs=2 is more than trainer.max_epochs=1: using data.no_aug_epochs=1")
    assert warnings[0] in caplog.text
    assert check_config(cfg) == []  # the same config checked again (the CLI and train() both check): nothing new


@pytest.mark.parametrize("overrides,expected", [
    (["trainer.max_epochs=1", "trainer.check_val_every_n_epoch=2", "data.no_aug_epochs=0"],
     "trainer.check_val_every_n_epoch=2 with trainer.max_epochs=1: this run never validates"),
    (["trainer.limit_val_batches=0"], "trainer.limit_val_batches=0: this run never validates"),
])
def test_a_run_that_never_validates_says_so_before_it_starts(overrides, expected) -> None:
    warnings = check_config(_compose(*overrides))
    assert len(warnings) == 1 and warnings[0].startswith(expected), warnings
    assert "no best.ckpt" in warnings[0] and "Set trainer." in warnings[0]


def test_every_problem_of_every_owner_is_reported_at_once() -> None:
    cfg = _compose("optim.lr=0", "optim.schedule.gamma=2", "trainer.max_epochs=0", "data.batch_size=0",
                   "seed=-1", "callbacks.ema.decay=2", "+storage.endpoint=x", "model.net.num_classes=7")
    keys = ["optim.lr=0", "optim.schedule.gamma=2", "trainer.max_epochs=0", "data.batch_size=0", "seed=-1",
            "callbacks.ema.decay=2", "endpoint", "model.net.num_classes=7"]
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    assert str(info.value).startswith(f"invalid configuration ({len(keys)} problems):"), str(info.value)
    for key in keys:
        assert key in str(info.value), key


def test_early_check_imports_no_torch() -> None:
    """neo-train answers a bad override before torch, Lightning or timm load (the check is torch-free)."""
    code = (
        "import sys\n"
        "from tests.training.test_config_tree import _compose\n"
        "from neo.config.check import config_errors\n"
        "errors = config_errors(_compose('optim.lr=0', 'data.resolution=1920x1200'), machine=False)\n"
        "assert len(errors) == 2, errors\n"
        "heavy = sorted(m for m in ('torch', 'lightning', 'timm', 'cv2') if m in sys.modules)\n"
        "print('heavy modules:', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "heavy modules: []" in result.stdout, result.stdout


def test_dfine_l_recipe_has_the_official_schedule_on_the_seed_sizes() -> None:
    cfg = _compose("experiment=dfine_l_1080p")
    seed = _compose("experiment=rtdetr_r50_1080p")
    assert cfg.model.name == "dfine_l" and cfg.data.resolution == "1080p"
    assert [list(s) for s in cfg.data.train_sizes] == [list(s) for s in seed.data.train_sizes]
    assert cfg.trainer.accumulate_grad_batches == 2 and cfg.trainer.gradient_clip_val == 0.1
    assert (cfg.optim.lr, cfg.optim.backbone_lr, cfg.optim.weight_decay) == (2.5e-4, 1.25e-5, 1.25e-4)
    assert cfg.trainer.max_epochs == 80 and cfg.trainer.max_epochs - cfg.data.no_aug_epochs == 72
    assert (cfg.callbacks.ema.decay, cfg.callbacks.ema.ramp) == (0.9999, 1000)
    assert cfg.optim.schedule.name == "constant" and cfg.optim.schedule.warmup == 500
