"""Defaults that fit the machine: GPU with mixed precision when there is one, else the CPU settings.

``trainer=auto`` (the default preset) leaves ``accelerator``/``devices``/``strategy`` to Lightning's
own ``auto`` (every visible GPU, one process each, else the CPU) and sets ``precision: auto``, which
:func:`resolve_precision` turns into bf16-mixed on GPUs that support it, 16-mixed on other GPUs, and on the
CPU bf16-mixed only where bf16 is native (AVX512-BF16/AMX), else 32-true (the rules:
:mod:`neo.training.precision`). ``channels_last: auto`` is decided with it (:func:`machine_settings`).
Data loaders use at most ``neo.cores.available_cores()`` workers and pin memory only with CUDA
(:mod:`neo.data.datamodule`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from neo.config import trainer_settings
from neo.config.trainer_settings import AUTO, uses_gpu
from neo.training.precision import (
    CpuCapability,
    PrecisionChoice,
    choose_channels_last,
    choose_precision,
    detect_cpu,
)

log = logging.getLogger(__name__)


def precision_choice(precision: Any, accelerator: Any, cuda_available: bool, bf16_supported: bool,
                     cpu: CpuCapability | None = None) -> PrecisionChoice:
    """:func:`neo.training.precision.choose_precision` for ``trainer.accelerator`` (``cpu=None``: this CPU)."""
    on_gpu = uses_gpu(accelerator, cuda_available)
    if cpu is None:
        cpu = detect_cpu()
    return choose_precision(precision, on_gpu=on_gpu, cuda_bf16=bf16_supported, cpu=cpu)


def resolve_precision(precision: Any, accelerator: Any, cuda_available: bool, bf16_supported: bool,
                      cpu: CpuCapability | None = None) -> str:
    """The canonical precision to hand Lightning (``auto`` decided for the device; ``cpu=None``: this CPU)."""
    return precision_choice(precision, accelerator, cuda_available, bf16_supported, cpu).precision


@dataclass(frozen=True)
class MachineSettings:
    """What ``trainer.precision`` and ``channels_last`` became on this machine, and why."""

    precision: PrecisionChoice
    channels_last: bool
    channels_last_reason: str
    cpu: CpuCapability
    on_gpu: bool

    def record(self) -> dict[str, Any]:
        """The ``summary.json`` entry: resolved values, what was asked, why, and the CPU kind."""
        return {"precision": self.precision.precision, "precision_requested": self.precision.requested,
                "precision_reason": self.precision.reason, "channels_last": self.channels_last,
                "channels_last_reason": self.channels_last_reason, "device": "cuda" if self.on_gpu else "cpu",
                "cpu": self.cpu.as_dict()}


def machine_settings(precision: Any, channels_last: Any, accelerator: Any, *, cuda: tuple[bool, bool] | None = None,
                     cpu: CpuCapability | None = None) -> MachineSettings:
    """Resolve ``trainer.precision`` and ``channels_last`` (each may be ``auto``) for this machine.

    ``cuda``: (GPU visible, GPU has bf16), ``cpu``: the CPU capability; None asks the machine (imports torch).
    """
    cuda_available, cuda_bf16 = trainer_settings.cuda_status() if cuda is None else cuda
    cpu = detect_cpu() if cpu is None else cpu
    on_gpu = uses_gpu(accelerator, cuda_available)
    choice = choose_precision(precision, on_gpu=on_gpu, cuda_bf16=cuda_bf16, cpu=cpu)
    layout, why = choose_channels_last(channels_last, on_gpu=on_gpu, precision=choice.precision, cpu=cpu)
    return MachineSettings(choice, layout, why, cpu, on_gpu)


def _warn_once(message: str) -> None:
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:
        log.warning(message)


def make_trainer(**kwargs: Any):
    """``lightning.pytorch.Trainer(**kwargs)`` with ``precision`` resolved for this machine (``_target_`` of conf/trainer).

    An explicit bf16 precision on a CPU without native bf16 is kept, with one warning line.
    """
    import lightning.pytorch as pl

    cuda_available, bf16_supported = trainer_settings.cuda_status()
    choice = precision_choice(kwargs.get("precision", AUTO), kwargs.get("accelerator", AUTO), cuda_available,
                              bf16_supported)
    if choice.warning:
        _warn_once(choice.warning)
    if str(kwargs.get("precision")) != choice.precision:
        log.info("trainer.precision=%s -> %s on this machine (%s)", kwargs.get("precision"), choice.precision,
                 choice.reason)
    return pl.Trainer(**{**kwargs, "precision": choice.precision})
