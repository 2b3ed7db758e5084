"""The optimizer x precision x clipping combination a GPU run builds is always one Lightning runs.

Lightning's mixed-precision plugin refuses to clip the gradients of an optimizer that unscales them inside
its step (fused AdamW). These tests need no GPU: they build neo's optimizer for ``device_type="cuda"``
(fused AdamW also constructs over CPU parameters, and sets the same ``_step_supports_amp_scaling`` flag
Lightning reads), build the precision plugin Lightning uses on a GPU for each precision, and call the
plugin's real ``clip_gradients``. Lightning's answer is the reference, not a copy of its rule.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hydra import compose, initialize_config_module
from lightning.pytorch.plugins.precision import HalfPrecision, MixedPrecision, Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from torch import nn

from neo.config.check import config_errors
from neo.config.optim_settings import fused_adamw
from neo.config_problems import SettingsError
from neo.training.optim import build_adamw

PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "bf16-true", "16-true")
CLIPS = (None, 0, 0.0, 0.1, 1.0)


def gpu_plugin(precision: str):
    """The precision plugin Lightning's accelerator connector builds for ``precision`` on a CUDA device."""
    if precision in ("16-mixed", "bf16-mixed"):
        return MixedPrecision(precision, device="cuda")  # fp16: a GradScaler (disabled where CUDA is absent)
    if precision in ("16-true", "bf16-true"):
        return HalfPrecision(precision)
    return Precision()


def net_with_grads() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    net(torch.randn(2, 3, 8, 8)).square().sum().backward()
    return net


def lightning_clips(plugin, optimizer, clip) -> bool:
    """Whether Lightning's plugin accepts clipping ``optimizer``'s gradients at ``clip`` (as the fit loop calls it)."""
    try:
        plugin.clip_gradients(optimizer, clip_val=clip or 0.0, gradient_clip_algorithm=GradClipAlgorithmType.NORM)
    except RuntimeError as exc:
        assert "does not allow for gradient clipping" in str(exc)
        return False
    return True


def raw_fused_adamw(net: nn.Module) -> torch.optim.AdamW:
    return torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)


def test_fused_adamw_carries_the_flag_lightning_reads() -> None:
    """What the whole test rests on: the optimizer built here is the one a CUDA run would get, flag included."""
    net = net_with_grads()
    fused = build_adamw(net, {"lr": 1e-4, "fused": True}, device_type="cuda")
    assert fused.defaults["fused"] is True and getattr(fused, "_step_supports_amp_scaling", False) is True
    plain = build_adamw(net, {"lr": 1e-4, "fused": False}, device_type="cuda")
    assert not plain.defaults.get("fused") and not getattr(plain, "_step_supports_amp_scaling", False)
    # and Lightning does refuse the fused one under AMP with clipping (the crash of issue 26)
    assert not lightning_clips(MixedPrecision("16-mixed", device="cuda"), fused, 0.1)
    assert not lightning_clips(MixedPrecision("bf16-mixed", device="cuda"), fused, 0.1)


@pytest.mark.parametrize("precision,clip", list(itertools.product(PRECISIONS, CLIPS)))
def test_auto_builds_what_lightning_runs_and_fuses_wherever_it_may(precision: str, clip) -> None:
    net = net_with_grads()
    plugin = gpu_plugin(precision)
    optimizer = build_adamw(net, {"lr": 1e-4, "fused": "auto"}, device_type="cuda", precision=precision,
                            gradient_clip_val=clip)
    fused = bool(optimizer.defaults.get("fused"))
    assert fused == fused_adamw("auto", precision, clip, "cuda")
    assert lightning_clips(plugin, optimizer, clip), f"auto built a combination Lightning refuses: {precision}, {clip}"
    if not fused:  # auto gave up the fused kernels only where Lightning refuses them
        assert not lightning_clips(plugin, raw_fused_adamw(net), clip), (precision, clip)


@pytest.mark.parametrize("precision,clip", list(itertools.product(PRECISIONS, CLIPS)))
def test_explicit_fused_is_built_where_lightning_runs_it_and_refused_where_not(precision: str, clip) -> None:
    net = net_with_grads()
    plugin = gpu_plugin(precision)
    lightning_accepts = lightning_clips(plugin, raw_fused_adamw(net), clip)
    if lightning_accepts:
        optimizer = build_adamw(net, {"lr": 1e-4, "fused": True}, device_type="cuda", precision=precision,
                                gradient_clip_val=clip)
        assert optimizer.defaults["fused"] is True and lightning_clips(plugin, optimizer, clip)
    else:
        with pytest.raises(SettingsError) as refused:
            build_adamw(net, {"lr": 1e-4, "fused": True}, device_type="cuda", precision=precision,
                        gradient_clip_val=clip)
        message = str(refused.value)
        assert f"trainer.precision={precision}" in message and f"trainer.gradient_clip_val={clip}" in message
        assert "optim.fused=auto" in message and "optim.fused=false" in message
    # fused=false always runs
    optimizer = build_adamw(net, {"lr": 1e-4, "fused": False}, device_type="cuda", precision=precision,
                            gradient_clip_val=clip)
    assert not optimizer.defaults.get("fused") and lightning_clips(plugin, optimizer, clip)


def test_cpu_runs_never_get_fused_kernels_from_auto() -> None:
    for precision, clip in itertools.product(PRECISIONS, CLIPS):
        assert fused_adamw("auto", precision, clip, "cpu") is False


def _compose(*overrides: str):
    with initialize_config_module(version_base="1.3", config_module="conf"):
        return compose(config_name="train", overrides=["paths.root_dir=/tmp/neo-test-root", *overrides])


def _fused_errors(cfg, machine: bool = False) -> list[str]:
    return [e for e in config_errors(cfg, machine=machine) if e.startswith("optim.fused")]


@pytest.mark.parametrize("overrides", [
    ["experiment=rtdetr_r50_1080p", "optim.fused=true"],                                  # fp16 AMP + clip 0.1
    ["trainer=gpu", "optim.fused=true"],                                                  # auto = AMP on a GPU
    ["trainer=gpu", "trainer.precision=bf16-mixed", "optim.fused=true", "trainer.gradient_clip_val=1.0"],
])
def test_the_config_check_refuses_fused_with_clipping_under_amp(overrides: list[str]) -> None:
    errors = _fused_errors(_compose(*overrides))
    assert len(errors) == 1, errors
    assert "optim.fused=True cannot run with trainer.precision=" in errors[0]
    assert "gradient_clip_val=" in errors[0] and "Fix: use optim.fused=auto" in errors[0]


@pytest.mark.parametrize("overrides", [
    ["experiment=rtdetr_r50_1080p"],                                                      # the seed recipe: auto
    ["experiment=rtdetr_r50_1080p", "optim.fused=false"],
    ["experiment=rtdetr_r50_1080p", "optim.fused=true", "trainer.gradient_clip_val=0"],   # no clipping: fused runs
    ["experiment=rtdetr_r50_1080p", "optim.fused=true", "trainer.gradient_clip_val=null"],
    ["trainer=gpu", "optim.fused=true", "trainer.precision=32-true"],                     # no AMP: fused clips fine
    ["trainer=cpu", "optim.fused=true"],
    ["experiment=cpu_demo"],
])
def test_the_config_check_lets_runnable_combinations_through(overrides: list[str]) -> None:
    assert _fused_errors(_compose(*overrides), machine=True) == []


def test_precision_auto_on_accelerator_auto_is_decided_by_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from neo.config import trainer_settings

    cfg = _compose("optim.fused=true")  # default trainer: accelerator auto, precision auto, clip 0.1
    assert _fused_errors(cfg) == []  # without asking the machine nothing is known
    monkeypatch.setattr(trainer_settings, "cuda_status", lambda: (False, False))
    assert _fused_errors(cfg, machine=True) == []  # the CPU: 32-true, fused clips fine
    monkeypatch.setattr(trainer_settings, "cuda_status", lambda: (True, True))
    errors = _fused_errors(cfg, machine=True)  # a GPU: bf16-mixed
    assert len(errors) == 1 and "optim.fused=True cannot run" in errors[0]


# ------------------------------------------------------------------ what the GPU suite (tests/gpu) will run
def _gpu_commands(tmp: str) -> dict[str, list[str]]:
    from tests.gpu.commands import ddp_one_process, demo_on_the_gpu, seed_recipe

    return {"seed recipe": seed_recipe(tmp, tmp), "demo": demo_on_the_gpu(tmp, tmp), "ddp": ddp_one_process(tmp, tmp)}


@pytest.mark.parametrize("name", ["seed recipe", "demo", "ddp"])
def test_the_gpu_suite_commands_compose_pass_the_check_and_build_a_runnable_optimizer(name: str, tmp_path) -> None:
    """Each neo-train command of ``make test-gpu`` composes here, passes every configuration rule but the ones
    that need its data or its GPU, and its optimizer x precision x clipping is one Lightning's plugin runs."""
    from omegaconf import OmegaConf

    from neo.training.machine import resolve_precision

    cfg = _compose(*_gpu_commands(str(tmp_path))[name])
    errors = [e for e in config_errors(cfg, machine=False) if "does not exist" not in e]
    assert errors == []
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert trainer["accelerator"] in ("auto", "gpu")  # the demo's trainer=cpu is replaced
    precision = resolve_precision(trainer["precision"], trainer["accelerator"], cuda_available=True,
                                  bf16_supported=True)
    assert precision in ("16-mixed", "bf16-mixed")  # mixed precision with clipping: the issue-26 crash
    assert trainer["gradient_clip_val"] == 0.1
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    optimizer = build_adamw(net_with_grads(), optim, device_type="cuda", precision=precision,
                            gradient_clip_val=trainer["gradient_clip_val"])
    assert lightning_clips(gpu_plugin(precision), optimizer, trainer["gradient_clip_val"])
    if name == "seed recipe":
        assert precision == "16-mixed" and trainer["accumulate_grad_batches"] == 2
    if name == "ddp":
        assert trainer["strategy"] == "ddp" and trainer["devices"] == 1
