"""Learning-rate schedules stepped per optimizer step: linear warmup, then multistep, cosine or flat-cosine.

All schedules are multiplicative factors on each group's base lr (``LambdaLR``), so the backbone
group keeps its ratio to the rest. Epoch-valued settings are converted to steps with
``steps_per_epoch`` (optimizer steps, i.e. after gradient accumulation).
:class:`neo.config.schedule_settings.ScheduleSettings` owns the rules of ``cfg.optim.schedule``; this
module imports torch only
in :func:`build_scheduler`, so a configuration is checked before torch loads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from neo.config.schedule_settings import ScheduleSettings

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LambdaLR

@dataclass(frozen=True)
class LrSchedule:
    """A picklable lr factor: ``factor(step) -> float`` (step = optimizer steps done so far, from 0).

    name: one of :data:`neo.config.schedule_settings.SCHEDULES`; warmup_steps: linear ramp from ``warmup_start`` to 1;
    milestones: step indices where multistep multiplies by ``gamma``; total_steps: end of cosine;
    flat_steps: flat-cosine holds 1 until this step; min_factor: floor of cosine schedules.
    """

    name: str
    total_steps: int
    warmup_steps: int = 0
    warmup_start: float = 0.001
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    flat_steps: int = 0
    min_factor: float = 0.05

    def __call__(self, step: int) -> float:
        if self.warmup_steps > 0 and step < self.warmup_steps:
            warm = self.warmup_start + (1.0 - self.warmup_start) * (step + 1) / self.warmup_steps
        else:
            warm = 1.0
        return warm * self._main(step)

    def _main(self, step: int) -> float:
        if self.name == "constant":
            return 1.0
        if self.name == "multistep":
            return self.gamma ** sum(step >= m for m in self.milestones)
        start = self.flat_steps if self.name == "flat_cosine" else self.warmup_steps
        if step < start:
            return 1.0
        span = max(1, self.total_steps - start)
        progress = min(1.0, (step - start) / span)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule_from_config(sched_cfg: Mapping, steps_per_epoch: int, total_steps: int) -> LrSchedule:
    """Build an :class:`LrSchedule` from ``cfg.optim.schedule`` (checked by :class:`ScheduleSettings`)."""
    settings = ScheduleSettings.from_config(sched_cfg)
    steps_per_epoch = max(1, int(steps_per_epoch))

    def to_steps(value: float, unit: str) -> int:
        return int(round(value * steps_per_epoch)) if unit == "epoch" else int(value)

    return LrSchedule(
        name=settings.name,
        total_steps=int(total_steps),
        warmup_steps=to_steps(float(settings.warmup), settings.warmup_unit),
        warmup_start=float(settings.warmup_start),
        milestones=tuple(to_steps(float(m), settings.milestone_unit) for m in settings.milestones),
        gamma=float(settings.gamma),
        flat_steps=(
            to_steps(float(settings.flat), settings.milestone_unit)
            if settings.flat is not None
            else int(round(float(settings.flat_fraction) * total_steps))
        ),
        min_factor=float(settings.min_lr_ratio),
    )


def build_scheduler(optimizer: Optimizer, schedule: LrSchedule) -> LambdaLR:
    """A ``LambdaLR`` applying ``schedule`` to every group (Lightning steps it with interval="step")."""
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lr_lambda=schedule)
