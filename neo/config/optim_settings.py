"""``cfg.optim`` as checked plain values: AdamW hyper-parameters, backbone lr, the lr schedule.

Torch-free so ``neo-train`` refuses a bad optimiser setting before torch loads; ``neo.training.optim``
builds the optimizer from an :class:`OptimSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from neo.config.schedule_settings import ScheduleSettings
from neo.config_problems import is_number, node_problems, problem, raise_problems

FUSED_CHOICES = ("auto", True, False)
# Lightning's MixedPrecision plugin (torch.autocast) serves these precisions. Its ``clip_gradients`` refuses any
# optimizer that unscales gradients inside its own step (``_step_supports_amp_scaling``, which fused AdamW sets),
# whatever the scaler: clipping needs the true gradients before the step, so it must see them unscaled first.
AMP_PRECISIONS = ("16-mixed", "bf16-mixed")


def clips_gradients(gradient_clip_val: Any) -> bool:
    """Whether Lightning clips: ``trainer.gradient_clip_val`` set and above 0 (null and 0 mean no clipping)."""
    return is_number(gradient_clip_val) and gradient_clip_val > 0


def fused_adamw(fused: str | bool, precision: str, gradient_clip_val: Any, device_type: str) -> bool:
    """Whether to build AdamW with fused kernels for this optimizer x precision x clipping x device combination.

    ``auto``: fused on CUDA unless Lightning's AMP plugin would refuse it (a mixed ``precision`` with clipping),
    so auto never builds a combination that crashes at the first optimizer step; foreach AdamW otherwise (the
    same update, a few more kernel launches). ``True``/``False`` are taken as given; ``True`` where Lightning
    refuses it is :func:`fused_problem`'s to report. ``precision`` is Lightning's canonical name ("16-mixed").
    """
    if fused == "auto":
        return device_type == "cuda" and fused_problem(True, precision, gradient_clip_val) is None
    return bool(fused)


def fused_problem(fused: Any, precision: Any, gradient_clip_val: Any) -> str | None:
    """The message refusing ``optim.fused=true`` where Lightning's AMP plugin refuses to clip, else None."""
    if fused is True and precision in AMP_PRECISIONS and clips_gradients(gradient_clip_val):
        return problem("optim.fused", fused,
                       f"cannot run with trainer.precision={precision} and trainer.gradient_clip_val={gradient_clip_val}: "
                       "Lightning's mixed-precision plugin refuses to clip the gradients of a fused optimizer "
                       "(it unscales them inside its step, after clipping would have run)",
                       "use optim.fused=auto (fused only where it can run) or optim.fused=false; or "
                       "trainer.gradient_clip_val=0 / precision=32-true to keep fused kernels")
    return None


@dataclass(frozen=True)
class OptimSettings:
    """AdamW settings of ``cfg.optim`` (see conf/optim/default.yaml for each key's meaning)."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-4
    backbone_lr: float | None = None
    backbone_lr_mult: float = 0.1
    backbone_prefixes: tuple[str, ...] = ("backbone.",)
    no_decay_names: tuple[str, ...] = ()
    fused: str | bool = "auto"
    schedule: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        raise_problems(self.problems())

    def problems(self) -> list[str]:
        """Every invalid value (the schedule's included), one message each."""
        out = []
        if not is_number(self.lr) or not 0 < self.lr <= 1:
            out.append(problem("optim.lr", self.lr, "must be a number in (0, 1]", "use e.g. optim.lr=1e-4 (RT-DETR) or 2e-4"))
        if not is_number(self.weight_decay) or self.weight_decay < 0:
            out.append(problem("optim.weight_decay", self.weight_decay, "must be >= 0", "use e.g. optim.weight_decay=1e-4"))
        if self.backbone_lr is not None and (not is_number(self.backbone_lr) or self.backbone_lr < 0):
            out.append(problem("optim.backbone_lr", self.backbone_lr, "must be >= 0 or null",
                               "set an absolute lr such as 1e-5, or null to use optim.backbone_lr_mult"))
        if not is_number(self.backbone_lr_mult) or self.backbone_lr_mult < 0:
            out.append(problem("optim.backbone_lr_mult", self.backbone_lr_mult, "must be >= 0",
                               "use e.g. 0.1 (0 freezes the backbone's lr)"))
        betas = list(self.betas)
        if len(betas) != 2 or not all(is_number(b) and 0 <= b < 1 for b in betas):
            out.append(problem("optim.betas", betas, "must be two numbers in [0, 1)", "use [0.9, 0.999]"))
        if not is_number(self.eps) or self.eps <= 0:
            out.append(problem("optim.eps", self.eps, "must be > 0", "use 1e-8"))
        if self.fused not in FUSED_CHOICES:
            out.append(problem("optim.fused", self.fused, "is not a choice", "use auto (fused kernels on CUDA), true or false"))
        return out + ScheduleSettings.config_problems(self.schedule)

    @classmethod
    def config_problems(cls, node: Mapping[str, Any] | None) -> list[str]:
        """Problems of a ``cfg.optim`` mapping, unknown keys included, without raising."""
        return node_problems("optim", node, (f.name for f in fields(cls)), cls._build)

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> OptimSettings:
        """Build from ``cfg.optim``; raises ``SettingsError`` naming every problem."""
        raise_problems(cls.config_problems(node))
        return cls._build(dict(node or {}))

    @classmethod
    def _build(cls, values: dict[str, Any]) -> OptimSettings:
        for key in ("betas", "backbone_prefixes", "no_decay_names"):
            if key in values:
                values[key] = tuple(values[key] or ())
        values["schedule"] = dict(values.get("schedule") or {})
        return cls(**values)
