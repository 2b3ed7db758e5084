"""Learning-rate schedules stepped per optimizer step: linear warmup, then multistep, cosine or flat-cosine.

All schedules are multiplicative factors on each group's base lr (``LambdaLR``), so the backbone
group keeps its ratio to the rest. Epoch-valued settings are converted to steps with
``steps_per_epoch`` (optimizer steps, i.e. after gradient accumulation).
:class:`ScheduleSettings` owns the rules of ``cfg.optim.schedule``; this module imports torch only
in :func:`build_scheduler`, so a configuration is checked before torch loads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from neo.config_problems import is_number, node_problems, problem, raise_problems

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("multistep", "cosine", "flat_cosine", "constant")
UNITS = ("step", "epoch")


@dataclass(frozen=True)
class ScheduleSettings:
    """``cfg.optim.schedule`` as plain values, checked on construction (:meth:`problems` lists every fault).

    warmup is in warmup_unit: the official RT-DETR recipe warms up for 2000 optimizer steps, so the
    unit defaults to "step". milestones / flat are in milestone_unit ("epoch" by default, as the
    official lr drops are given). flat: None holds flat-cosine for flat_fraction of all steps.
    """

    name: str = "multistep"
    warmup: float = 0
    warmup_unit: str = "step"
    warmup_start: float = 0.001
    milestones: tuple[float, ...] = ()
    milestone_unit: str = "epoch"
    gamma: float = 0.1
    flat: float | None = None
    flat_fraction: float = 0.5
    min_lr_ratio: float = 0.05

    def __post_init__(self) -> None:
        raise_problems(self.problems())

    def problems(self) -> list[str]:
        """Every invalid value, as one-line messages naming the key, the value and the fix."""
        out = []
        if self.name not in SCHEDULES:
            out.append(problem("optim.schedule.name", self.name, "is not a schedule", f"choose one of {', '.join(SCHEDULES)}"))
        for key in ("warmup_unit", "milestone_unit"):
            if getattr(self, key) not in UNITS:
                out.append(problem(f"optim.schedule.{key}", getattr(self, key), "is not a unit", "use 'step' or 'epoch'"))
        if not is_number(self.warmup) or self.warmup < 0:
            out.append(problem("optim.schedule.warmup", self.warmup, "must be >= 0", "use e.g. 2000 (steps) or 5 (epochs)"))
        if not is_number(self.warmup_start) or not 0 <= self.warmup_start <= 1:
            out.append(problem("optim.schedule.warmup_start", self.warmup_start, "must be in [0, 1]", "use 0.001"))
        ms = list(self.milestones)
        if any(not is_number(m) or m <= 0 for m in ms) or ms != sorted(ms):
            out.append(problem("optim.schedule.milestones", ms, "must be positive and increasing", "use e.g. [40, 55]"))
        if not is_number(self.gamma) or not 0 < self.gamma <= 1:
            out.append(problem("optim.schedule.gamma", self.gamma, "must be in (0, 1]", "use 0.1"))
        if self.flat is not None and (not is_number(self.flat) or self.flat < 0):
            out.append(problem("optim.schedule.flat", self.flat, "must be >= 0 or null", "use null (flat_fraction) or e.g. 36"))
        if not is_number(self.flat_fraction) or not 0 <= self.flat_fraction <= 1:
            out.append(problem("optim.schedule.flat_fraction", self.flat_fraction, "must be in [0, 1]", "use 0.5"))
        if not is_number(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            out.append(problem("optim.schedule.min_lr_ratio", self.min_lr_ratio, "must be in [0, 1]", "use e.g. 0.05"))
        return out

    @classmethod
    def config_problems(cls, node: Mapping[str, Any] | None) -> list[str]:
        """Problems of a ``cfg.optim.schedule`` mapping (unknown keys included) without raising."""
        return node_problems("optim.schedule", node, (f.name for f in fields(cls)), cls._build)

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> ScheduleSettings:
        """Build from ``cfg.optim.schedule``; raises ``SettingsError`` naming every problem."""
        raise_problems(cls.config_problems(node))
        return cls._build(dict(node or {}))

    @classmethod
    def _build(cls, values: dict[str, Any]) -> ScheduleSettings:
        return cls(**{**values, "milestones": tuple(values.get("milestones") or ())})


@dataclass(frozen=True)
class LrSchedule:
    """A picklable lr factor: ``factor(step) -> float`` (step = optimizer steps done so far, from 0).

    name: one of :data:`SCHEDULES`; warmup_steps: linear ramp from ``warmup_start`` to 1;
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
