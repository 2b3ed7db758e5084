"""``cfg.optim.schedule``: the learning-rate schedule's settings and their rules, torch-free so ``neo-train``
refuses a bad schedule before torch loads (:mod:`neo.training.schedule` builds the schedule from them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from neo.config_problems import is_number, node_problems, problem, raise_problems

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
