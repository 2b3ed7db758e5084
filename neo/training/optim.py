"""AdamW with RT-DETR parameter groups: backbone lr, and no weight decay on norms, biases, embeddings.

Four groups at most, each named for logging (LearningRateMonitor reads ``name``):
``backbone`` / ``backbone_no_decay`` / ``rest`` / ``rest_no_decay``. Empty groups are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from neo.config.optim_settings import OptimSettings, fused_adamw, fused_problem
from neo.config_problems import raise_problems

# Module types whose parameters never get weight decay (their weights are scales/offsets or lookups).
NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.Embedding,
)


@dataclass
class ParamGroupSpec:
    """How to split parameters: plain values from ``cfg.optim``."""

    lr: float
    weight_decay: float
    backbone_prefixes: list[str] = field(default_factory=lambda: ["backbone."])
    backbone_lr: float | None = None  # absolute backbone lr; wins over backbone_lr_mult
    backbone_lr_mult: float = 0.1
    no_decay_names: list[str] = field(default_factory=list)  # extra substrings that get no decay

    @property
    def effective_backbone_lr(self) -> float:
        return self.backbone_lr if self.backbone_lr is not None else self.lr * self.backbone_lr_mult


def no_decay_parameter_names(module: nn.Module, extra_substrings: Iterable[str] = ()) -> set[str]:
    """Names of parameters that must not be weight-decayed.

    A parameter gets no decay if it belongs to a norm or embedding module, is one-dimensional
    (biases, scales) or its name contains one of ``extra_substrings`` (e.g. "query_pos").
    """
    extra = tuple(extra_substrings)
    names: set[str] = set()
    for module_name, sub in module.named_modules():
        for param_name, param in sub.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if isinstance(sub, NO_DECAY_MODULES) or param.ndim <= 1 or any(s in full for s in extra):
                names.add(full)
    return names


def build_param_groups(module: nn.Module, spec: ParamGroupSpec) -> list[dict]:
    """Split ``module``'s trainable parameters into named AdamW groups.

    Returns a list of dicts with keys ``name``, ``params``, ``param_names``, ``lr``, ``weight_decay``.
    Frozen parameters (``requires_grad=False``) are left out.
    """
    no_decay = no_decay_parameter_names(module, spec.no_decay_names)
    buckets: dict[str, list[tuple[str, nn.Parameter]]] = {
        "backbone": [],
        "backbone_no_decay": [],
        "rest": [],
        "rest_no_decay": [],
    }
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if any(name.startswith(p) for p in spec.backbone_prefixes) else "rest"
        key = f"{part}_no_decay" if name in no_decay else part
        buckets[key].append((name, param))
    groups = []
    for key, items in buckets.items():
        if not items:
            continue
        groups.append(
            {
                "name": key,
                "params": [p for _, p in items],
                "param_names": [n for n, _ in items],
                "lr": spec.effective_backbone_lr if key.startswith("backbone") else spec.lr,
                "weight_decay": 0.0 if key.endswith("no_decay") else spec.weight_decay,
            }
        )
    if not groups:
        raise ValueError("the model has no trainable parameters: check freezing settings in cfg.model")
    return groups


def build_adamw(
    module: nn.Module,
    optim_cfg: Mapping,
    device_type: str = "cpu",
    precision: str = "32-true",
    gradient_clip_val: float | None = None,
) -> torch.optim.AdamW:
    """AdamW over :func:`build_param_groups`, fused or not as :func:`fused_adamw` decides for the whole run.

    ``precision`` (Lightning's canonical name) and ``gradient_clip_val`` are the trainer's: with a mixed
    precision and clipping, ``optim.fused=auto`` builds the foreach AdamW (Lightning's AMP plugin refuses to
    clip a fused optimizer) and ``optim.fused=true`` is refused. ``optim_cfg`` is checked by
    :class:`OptimSettings` (a ``SettingsError`` names every bad value).
    """
    settings = OptimSettings.from_config(optim_cfg)
    raise_problems([p for p in [fused_problem(settings.fused, precision, gradient_clip_val)] if p])
    spec = ParamGroupSpec(
        lr=float(settings.lr),
        weight_decay=float(settings.weight_decay),
        backbone_prefixes=list(settings.backbone_prefixes),
        backbone_lr=settings.backbone_lr,
        backbone_lr_mult=float(settings.backbone_lr_mult),
        no_decay_names=list(settings.no_decay_names),
    )
    groups = build_param_groups(module, spec)
    fused = fused_adamw(settings.fused, precision, gradient_clip_val, device_type)
    for group in groups:
        group.pop("param_names")
    return torch.optim.AdamW(
        groups,
        lr=spec.lr,
        betas=tuple(settings.betas),
        eps=float(settings.eps),
        weight_decay=spec.weight_decay,
        fused=fused or None,
    )
