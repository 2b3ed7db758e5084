"""Model EMA as a Lightning callback: RT-DETR's decay with a warm-up ramp, validated and checkpointed.

Built on ``lightning.pytorch.callbacks.WeightAveraging`` (torch ``AveragedModel``), which already
swaps the averaged weights in for validation, writes them as the checkpoint's ``state_dict`` (raw
weights go to ``current_model_state``, the update count to ``averaging_state``) and restores both
on resume. What neo adds is the decay: ``decay * (1 - exp(-updates / ramp))``, as in the official
RT-DETR ModelEMA, applied to parameters and buffers (integer buffers are copied).
"""

from __future__ import annotations

import math

import torch
from lightning.pytorch.callbacks import WeightAveraging

from neo.config.ema_settings import ema_problems
from neo.config_problems import raise_problems


def ema_decay(updates: int, decay: float = 0.9999, ramp: float = 2000.0) -> float:
    """Effective decay after ``updates`` EMA updates (1-based): small at first, -> ``decay``."""
    return decay * (1.0 - math.exp(-updates / ramp)) if ramp > 0 else decay


class RampedEMA:
    """``multi_avg_fn`` for ``AveragedModel``: ema = d * ema + (1 - d) * current (float tensors).

    ``num_averaged`` counts updates before this one (AveragedModel copies on the first update),
    so this update is number ``num_averaged + 1``.
    """

    def __init__(self, decay: float, ramp: float) -> None:
        self.decay = decay
        self.ramp = ramp

    @torch.no_grad()
    def __call__(self, ema: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        if not ema:
            return
        if not ema[0].is_floating_point():
            torch._foreach_copy_(ema, current)
            return
        d = ema_decay(int(num_averaged.item()) + 1, self.decay, self.ramp)
        torch._foreach_lerp_(ema, current, 1.0 - d)


class EMA(WeightAveraging):
    """Exponential moving average of all weights, updated after every optimizer step.

    Args:
        decay: asymptotic decay (RT-DETR: 0.9999).
        ramp: warm-up constant in updates (RT-DETR: 2000); 0 disables the ramp.
        start_step: first optimizer step (0-based) that updates the average.
        device: where the averaged copy lives (None: same as the model).
    """

    def __init__(self, decay: float = 0.9999, ramp: float = 2000.0, start_step: int = 0, device: str | None = None):
        raise_problems(ema_problems(decay, ramp, start_step))
        super().__init__(device=device, use_buffers=True, multi_avg_fn=RampedEMA(decay, ramp))
        self.decay = decay
        self.ramp = ramp
        self.start_step = start_step

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start_step

    @property
    def updates(self) -> int:
        """Number of EMA updates so far (0 before fit)."""
        return 0 if self._average_model is None else int(self._average_model.n_averaged.item())

    @property
    def average_module(self) -> torch.nn.Module | None:
        """The averaged copy of the LightningModule (None outside fit)."""
        return None if self._average_model is None else self._average_model.module
