"""Check a composed run config before anything heavy starts: every problem at once, one line each.

Each settings owner checks its own keys (:mod:`neo.data.settings`, :class:`OptimSettings` with
:class:`ScheduleSettings`, :mod:`neo.config.trainer_settings`, :mod:`neo.config.run_settings`,
:mod:`neo.config.ema_settings`, ``StorageSettings``); this module asks each of them and keeps only
the rules that span several keys (model vs data classes, schedule milestones and ``no_aug_epochs`` vs
``max_epochs``, precision vs accelerator, validation cadence vs run length, the storage group).
Conflicts with an obvious resolution are resolved in the config and reported as warnings.

Nothing here imports torch: ``neo-train`` runs :func:`check_config` before torch, Lightning or timm
load, so a bad override is answered in about a second. ``machine=True`` adds the rules that ask the
machine (a GPU requested where torch sees none), which import torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from neo.config import trainer_settings
from neo.config.ema_settings import ema_problems
from neo.config.optim_settings import OptimSettings, fused_problem
from neo.config.run_settings import run_problems
from neo.config.trainer_settings import (
    GPU_ACCELERATORS,
    canonical_precision,
    channels_last_problems,
    trainer_problems,
    uses_gpu,
)
from neo.config_problems import UserError, problem
from neo.data.settings import data_problems, dataset_path_problems

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # each warning once per process (a sweep checks one config per point)


class ConfigError(UserError, ValueError):
    """One or more config values are invalid; the message names each key, its value and the fix."""


def _node(cfg: DictConfig, key: str) -> Any:
    """The resolved plain value at ``key`` (dicts/lists as plain containers; None when absent)."""
    value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig,)) or OmegaConf.is_list(value) else value


def _trainer(cfg: DictConfig) -> dict[str, Any]:
    return _node(cfg, "trainer") or {}


# ------------------------------------------------------------------ owners
def owner_problems(cfg: DictConfig) -> list[str]:
    """What each settings owner says about its own keys."""
    data = _node(cfg, "data") or {}
    out = OptimSettings.config_problems(_node(cfg, "optim"))
    out += trainer_problems(_trainer(cfg))
    out += data_problems(data) + dataset_path_problems(data)
    out += run_problems({k: _node(cfg, k) for k in ("run_name", "seed", "torch_threads", "ckpt_path", "pretrained")})
    out += channels_last_problems(_node(cfg, "channels_last") if "channels_last" in cfg else False)
    ema = _node(cfg, "callbacks.ema")
    if ema is not None:
        out += ema_problems(**{k: ema[k] for k in ("decay", "ramp", "start_step") if k in ema})
    out += storage_problems(cfg)
    return out


def storage_problems(cfg: DictConfig) -> list[str]:
    """``StorageSettings.from_config`` (the one parser of bucket settings) on ``cfg.storage``."""
    storage = _node(cfg, "storage")
    if storage is None:
        return []
    from neo.storage.settings import StorageSettings

    try:
        StorageSettings.from_config(storage)
    except (ValueError, TypeError) as exc:
        return [f"storage: {exc}"]
    return []


# ------------------------------------------------------------------ rules across keys
def check_num_classes(cfg: DictConfig) -> str | None:
    model_nc, data_nc = _node(cfg, "model.net.num_classes"), _node(cfg, "data.num_classes")
    if isinstance(model_nc, int) and isinstance(data_nc, int) and data_nc >= 1 and model_nc != data_nc:
        return problem("model.net.num_classes", model_nc, f"differs from data.num_classes={data_nc}",
                       "leave model.net.num_classes=${data.num_classes}")
    return None


def check_milestones_fit_run(cfg: DictConfig) -> str | None:
    schedule, epochs = _node(cfg, "optim.schedule") or {}, _trainer(cfg).get("max_epochs")
    milestones = [m for m in schedule.get("milestones") or [] if isinstance(m, (int, float))]
    if schedule.get("milestone_unit", "epoch") == "epoch" and milestones and isinstance(epochs, int) and epochs > 0 \
            and max(milestones) > epochs:
        return problem("optim.schedule.milestones", list(schedule["milestones"]),
                       f"go past trainer.max_epochs={epochs}, so they never fire",
                       "lower the milestones or raise trainer.max_epochs")
    return None


FP16 = ("16-mixed", "16-true")


def _fp16_on_cpu(precision: Any) -> str:
    return problem("trainer.precision", precision, "is fp16, which CPUs run slowly or not at all",
                   "on CPU use precision=bf16-mixed, 32-true or auto; 16-mixed is for trainer=gpu")


def check_precision_fits_accelerator(cfg: DictConfig) -> str | None:
    """fp16 with ``trainer.accelerator=cpu`` (with ``auto``, :func:`check_machine` decides)."""
    trainer = _trainer(cfg)
    if canonical_precision(trainer.get("precision", "auto")) in FP16 and str(trainer.get("accelerator")) == "cpu":
        return _fp16_on_cpu(trainer.get("precision"))
    return None


def check_storage_choice(cfg: DictConfig) -> str | None:
    """``storage`` is an optional group: Hydra silently drops an option that does not exist (storage=gcs)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get("storage") if HydraConfig.initialized() else None
    except Exception:  # noqa: BLE001 - outside a Hydra app
        return None
    if choice in (None, "null") or _node(cfg, "storage") is not None:
        return None
    from importlib.resources import files

    options = sorted(p.name.removesuffix(".yaml") for p in (files("conf") / "storage").iterdir()
                     if p.name.endswith(".yaml"))
    return problem("storage", choice, "is not a storage option, so the run would have no bucket",
                   f"use one of {', '.join(options)} (then storage.bucket=r2://<name> etc.)")


def check_machine(cfg: DictConfig) -> str | None:
    """Rules that ask the machine (import torch; only with ``machine=True``).

    A GPU asked for where torch sees none; fp16 with ``accelerator=auto`` where auto means the CPU.
    """

    trainer = _trainer(cfg)
    accelerator = str(trainer.get("accelerator", "auto"))
    cuda_available = trainer_settings.cuda_status()[0]
    if accelerator in GPU_ACCELERATORS and not cuda_available:
        return problem("trainer.accelerator", accelerator, "asks for a GPU but torch sees none",
                       "use trainer=cpu on this machine (or check CUDA_VISIBLE_DEVICES / the driver)")
    if accelerator == "auto" and canonical_precision(trainer.get("precision", "auto")) in FP16 \
            and not uses_gpu(accelerator, cuda_available):
        return _fp16_on_cpu(trainer.get("precision"))
    return None


def _fused_optimizer_problem(cfg: DictConfig, cuda_available: bool | None) -> str | None:
    """``optim.fused=true`` with clipping under a mixed precision (``auto`` resolved where it can be)."""
    trainer = _trainer(cfg)
    precision = canonical_precision(trainer.get("precision", "auto"))
    if precision == "auto":  # auto is mixed precision wherever a GPU trains (neo.training.machine)

        accelerator = str(trainer.get("accelerator", "auto"))
        if accelerator == "auto" and cuda_available is None:
            return None  # the machine decides: check_fused_fits_this_machine
        if uses_gpu(accelerator, bool(cuda_available)):
            precision = "bf16-mixed"  # or 16-mixed: the same rule holds for both
    return fused_problem(_node(cfg, "optim.fused"), precision, trainer.get("gradient_clip_val"))


def check_fused_fits_clipping(cfg: DictConfig) -> str | None:
    """Fused AdamW cannot be clipped under Lightning's AMP plugin (see :func:`neo.config.optim_settings.fused_adamw`)."""
    return _fused_optimizer_problem(cfg, None)


def check_fused_fits_this_machine(cfg: DictConfig) -> str | None:
    """The same rule where ``trainer.accelerator=auto`` and ``precision=auto`` leave the precision to the machine."""
    trainer = _trainer(cfg)
    if str(trainer.get("accelerator", "auto")) != "auto" or canonical_precision(trainer.get("precision", "auto")) != "auto":
        return None

    return _fused_optimizer_problem(cfg, trainer_settings.cuda_status()[0])


RULES: list[Callable[[DictConfig], str | None]] = [
    check_num_classes, check_milestones_fit_run, check_precision_fits_accelerator, check_storage_choice,
    check_fused_fits_clipping,
]
MACHINE_RULES: list[Callable[[DictConfig], str | None]] = [check_machine, check_fused_fits_this_machine]


# ------------------------------------------------------------------ warnings (resolved conflicts)
def clamp_no_aug_epochs(cfg: DictConfig) -> str | None:
    """``data.no_aug_epochs`` larger than the run: clamp it to ``trainer.max_epochs``."""
    n, epochs = _node(cfg, "data.no_aug_epochs"), _trainer(cfg).get("max_epochs")
    if isinstance(n, int) and isinstance(epochs, int) and 0 < epochs < n:
        with open_dict(cfg):
            cfg.data.no_aug_epochs = epochs
        return (f"data.no_aug_epochs={n} is more than trainer.max_epochs={epochs}: using data.no_aug_epochs={epochs} "
                f"(every epoch of this run without heavy augmentation).")
    return None


def warn_never_validates(cfg: DictConfig) -> str | None:
    """A run whose settings skip every validation (no val/AP, no best checkpoint)."""
    trainer = _trainer(cfg)
    every, epochs = trainer.get("check_val_every_n_epoch", 1), trainer.get("max_epochs")
    if trainer.get("limit_val_batches") in (0, 0.0):
        return ("trainer.limit_val_batches=0: this run never validates, so it reports no val AP and writes no "
                "best.ckpt. Set trainer.limit_val_batches=null to validate.")
    if isinstance(every, int) and isinstance(epochs, int) and 0 < epochs < every:
        return (f"trainer.check_val_every_n_epoch={every} with trainer.max_epochs={epochs}: this run never validates, "
                f"so it reports no val AP and writes no best.ckpt. Set trainer.check_val_every_n_epoch={epochs} "
                f"(or lower) to validate at the end.")
    return None


WARNINGS: list[Callable[[DictConfig], str | None]] = [clamp_no_aug_epochs, warn_never_validates]


# ------------------------------------------------------------------ entry points
def _run(rules: list[Callable[[DictConfig], str | None]], cfg: DictConfig) -> list[str]:
    messages = []
    for rule in rules:
        try:
            message = rule(cfg)
        except Exception as exc:  # noqa: BLE001 - a rule must never hide the real error
            message = f"{rule.__name__}: could not check ({type(exc).__name__}: {exc})"
        if message:
            messages.append(message)
    return messages


def config_errors(cfg: DictConfig, *, machine: bool = True) -> list[str]:
    """Messages of every invalid value and every failing cross-key rule (empty when the config is valid)."""
    try:
        errors = owner_problems(cfg)
    except Exception as exc:  # noqa: BLE001 - e.g. an interpolation that does not resolve
        errors = [f"the configuration does not resolve ({type(exc).__name__}: {exc})"]
    return errors + _run(RULES + (MACHINE_RULES if machine else []), cfg)


def resolve_conflicts(cfg: DictConfig) -> list[str]:
    """Apply the obvious resolutions (clamping) to ``cfg`` and return what was done or will not happen."""
    return _run(WARNINGS, cfg)


# Set on a config that passed check_config (omegaconf node flags: kept by deepcopy, never saved): the owners and
# cross-key rules, and the machine rules. neo-train checks once, before torch loads; ``train()`` then checks only
# what was not checked yet (the machine rules), and fully when a library caller gives it an unchecked config.
CHECKED_FLAG = "neo_config_checked"
MACHINE_CHECKED_FLAG = "neo_machine_checked"


def check_config(cfg: DictConfig, *, machine: bool = True) -> list[str]:
    """Raise :class:`ConfigError` naming every invalid key/value and its fix; else resolve conflicts.

    Returns the warnings (each also logged once per process). ``machine=True`` adds rules that import torch.
    A config that already passed (the flags above) is not checked again: only the machine rules run when they
    are asked for now and were not before, and no warning is returned a second time.
    """
    if cfg._get_node_flag(CHECKED_FLAG):
        if machine and not cfg._get_node_flag(MACHINE_CHECKED_FLAG):
            _raise_if_any(_run(MACHINE_RULES, cfg))
            cfg._set_flag(MACHINE_CHECKED_FLAG, True)
        return []
    _raise_if_any(config_errors(cfg, machine=machine))
    warnings = resolve_conflicts(cfg)
    for message in warnings:
        if message not in _WARNED:
            _WARNED.add(message)
            log.warning(message)
    cfg._set_flag(CHECKED_FLAG, True)
    if machine:
        cfg._set_flag(MACHINE_CHECKED_FLAG, True)
    return warnings


def early_config_error(cfg: DictConfig) -> str | None:
    """The configuration's problems (the rules that need no machine) as one message, or None; imports no torch."""
    try:
        check_config(cfg, machine=False)
    except ConfigError as exc:
        return str(exc)
    return None


def _raise_if_any(errors: list[str]) -> None:
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise ConfigError(f"invalid configuration ({len(errors)} problem{'s' * (len(errors) > 1)}):\n{lines}")
