"""Refuse a ``-m`` sweep whose DDP strategy would start its extra ranks by re-running the command.

Lightning's default multi-process strategies (``ddp``, ``fsdp``, ``deepspeed``, and ``auto`` with more
than one device or node) start rank 1..N-1 as new processes running the same command line. Under
Hydra a child of ``neo-train -m ...`` sees ``-m`` again and runs the *whole sweep* in every rank: it
hangs or duplicates runs. Two ways work instead and the error names both:

* ``trainer.strategy=ddp_spawn`` / ``ddp_fork``: the ranks start inside each sweep job (Python
  multiprocessing), nothing is re-run;
* ``hydra/launcher=slurm``: one SLURM job per sweep point; SLURM starts the ranks (one task per GPU)
  and Lightning spawns nothing (likewise under torchrun, LSF or MPI).

:func:`check_multirun_launch` is called once per sweep job, before anything is built.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from neo.config_problems import UserError


class LaunchError(UserError, ValueError):
    """A launch combination that cannot work; the message names the values and the fix."""


def _strategy_class_and_start(strategy: Any) -> tuple[type | None, str | None]:
    """(strategy class, start method) of ``trainer.strategy`` given as a name or a ``_target_`` node."""
    from hydra.utils import get_class
    from lightning.pytorch.strategies import StrategyRegistry

    if isinstance(strategy, dict) and "_target_" in strategy:
        return get_class(str(strategy["_target_"])), strategy.get("start_method", "popen")
    if isinstance(strategy, str) and strategy in StrategyRegistry:
        entry = StrategyRegistry[strategy]
        return entry["strategy"], entry["init_params"].get("start_method", "popen")
    return None, None


def _device_count(trainer: dict[str, Any]) -> int:
    """Processes per node Lightning would start for ``trainer.devices`` (best effort, no CUDA init)."""
    devices = trainer.get("devices", "auto")
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, str) and devices.strip().isdigit():
        return int(devices)
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda", "auto"):  # "auto" / -1: every visible GPU
        import torch

        return max(1, torch.cuda.device_count())
    return 1


def processes_created_externally() -> bool:
    """True under SLURM (srun), torchrun/torchelastic, LSF: the scheduler starts every rank."""
    from lightning.fabric.plugins.environments import (
        LSFEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    return any(env.detect() for env in (SLURMEnvironment, TorchElasticEnvironment, LSFEnvironment))


def rerunning_strategy(trainer_cfg: DictConfig | dict[str, Any]) -> str | None:
    """A description of the strategy if Lightning would start extra ranks by re-running the command, else None."""
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, ModelParallelStrategy

    trainer = OmegaConf.to_container(trainer_cfg, resolve=True) if isinstance(trainer_cfg, DictConfig) else trainer_cfg
    strategy = trainer.get("strategy", "auto")
    num_nodes = int(trainer.get("num_nodes", 1) or 1)
    if strategy in (None, "auto"):
        processes = num_nodes * _device_count(trainer)
        return f"auto with {processes} processes (Lightning picks ddp)" if processes > 1 else None
    cls, start_method = _strategy_class_and_start(strategy)
    if cls is None or not issubclass(cls, (DDPStrategy, FSDPStrategy, ModelParallelStrategy)):
        return None
    if start_method != "popen":
        return None
    return strategy if isinstance(strategy, str) else f"{cls.__name__}(start_method=popen), i.e. ddp"


def check_multirun_launch(cfg: DictConfig) -> None:
    """Raise :class:`LaunchError` if this sweep job would re-run the whole sweep in every DDP rank."""
    if cfg.get("trainer") is None or processes_created_externally():
        return
    described = rerunning_strategy(cfg.trainer)
    if described is None:
        return
    raise LaunchError(
        f"trainer.strategy={described} cannot run in a -m sweep: Lightning starts the extra ranks by re-running "
        "this command, so every rank would run the whole sweep (it hangs or duplicates runs). Use one of:\n"
        "  trainer.strategy=ddp_spawn (or ddp_fork) - the ranks start inside each sweep job, e.g.\n"
        "      neo-train -m trainer=ddp_cpu trainer.strategy=ddp_fork optim.lr=1e-4,2e-4\n"
        "  hydra/launcher=slurm - one SLURM job per sweep point; SLURM starts one task per GPU, e.g.\n"
        "      neo-train -m hydra/launcher=slurm trainer=ddp optim.lr=1e-4,2e-4 ckpt_path=auto\n"
        "or run each point without -m (plain `neo-train trainer=ddp ...` may use strategy=ddp)."
    )
