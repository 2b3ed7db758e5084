"""Defaults that fit the machine: GPU with mixed precision when there is one, else the CPU settings.

``trainer=auto`` (the default preset) leaves ``accelerator``/``devices``/``strategy`` to Lightning's
own ``auto`` (every visible GPU, one process each, else the CPU) and sets ``precision: auto``, which
:func:`resolve_precision` turns into bf16-mixed on GPUs that support it, 16-mixed on other GPUs and
32-true on the CPU. Data loaders use at most ``neo.cores.available_cores()`` workers and pin memory only with
CUDA (:mod:`neo.data.datamodule`).
"""

from __future__ import annotations

import logging
from typing import Any

from neo.training.trainer_settings import AUTO, GPU_ACCELERATORS, canonical_precision

log = logging.getLogger(__name__)


def cuda_status() -> tuple[bool, bool]:
    """(a CUDA GPU is visible, it supports bf16). Imports torch."""
    import torch

    if not torch.cuda.is_available():
        return False, False
    return True, bool(torch.cuda.is_bf16_supported())


def uses_gpu(accelerator: Any, cuda_available: bool) -> bool:
    """Whether Lightning will train on a GPU for this ``trainer.accelerator``."""
    accelerator = str(accelerator or AUTO).lower()
    return accelerator in GPU_ACCELERATORS or (accelerator == AUTO and cuda_available)


def resolve_precision(precision: Any, accelerator: Any, cuda_available: bool, bf16_supported: bool) -> str:
    """The canonical precision to hand Lightning: ``auto`` picks bf16-mixed / 16-mixed on GPU, 32-true on CPU."""
    canonical = canonical_precision(precision)
    if canonical is None:
        raise ValueError(f"trainer.precision={precision!r} is not a Lightning precision")
    if canonical != AUTO:
        return canonical
    if uses_gpu(accelerator, cuda_available):
        return "bf16-mixed" if bf16_supported else "16-mixed"
    return "32-true"


def make_trainer(**kwargs: Any):
    """``lightning.pytorch.Trainer(**kwargs)`` with ``precision`` resolved for this machine (``_target_`` of conf/trainer)."""
    import lightning.pytorch as pl

    cuda_available, bf16_supported = cuda_status()
    precision = resolve_precision(kwargs.get("precision", AUTO), kwargs.get("accelerator", AUTO),
                                  cuda_available, bf16_supported)
    if str(kwargs.get("precision")) != precision:
        log.info("trainer.precision=%s -> %s on this machine", kwargs.get("precision"), precision)
    return pl.Trainer(**{**kwargs, "precision": precision})
