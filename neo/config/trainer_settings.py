"""``cfg.trainer``: the values neo checks before Lightning loads, and Lightning's precision names.

Lightning accepts a precision as a canonical name ("bf16-mixed") or an alias (16, "16", "bf16", 32,
...); :func:`canonical_precision` maps both to the canonical name (neo passes that on, so Lightning
never warns about "historical" aliases). ``auto`` is neo's own value: the machine decides
(:mod:`neo.training.machine`). Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neo.config_problems import is_integer, is_number, problem

PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
              "transformer-engine", "transformer-engine-float16")
PRECISION_ALIASES = {"64": "64-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}
AUTO = "auto"
GPU_ACCELERATORS = ("gpu", "cuda")


def canonical_precision(value: Any) -> str | None:
    """Canonical Lightning precision of ``value`` (``16`` -> "16-mixed"), ``"auto"``, or None if unknown."""
    text = str(value).strip().lower() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None:
        return None
    if text == AUTO or text in PRECISIONS:
        return text
    return PRECISION_ALIASES.get(text)


def trainer_problems(trainer: Mapping[str, Any]) -> list[str]:
    """Every invalid single value of ``cfg.trainer`` (cross-key rules live in config_check)."""
    out = []
    precision = trainer.get("precision", AUTO)
    if canonical_precision(precision) is None:
        out.append(problem("trainer.precision", precision, "is not a Lightning precision",
                           "use auto (the machine decides), 32-true, 16-mixed (fp16 AMP on GPU) or bf16-mixed "
                           "(GPU, or a CPU with AVX512-BF16); 16, 32 and bf16 are accepted aliases"))
    acc = trainer.get("accumulate_grad_batches", 1)
    if not is_integer(acc) or acc < 1:
        out.append(problem("trainer.accumulate_grad_batches", acc, "must be an integer >= 1",
                           "use 1 for no accumulation, or N to step the optimizer every N batches"))
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if epochs is None and (not is_integer(steps) or steps < 1):
        out.append(problem("trainer.max_epochs", epochs, "is unset and trainer.max_steps is not positive",
                           "set trainer.max_epochs=N (or trainer.max_steps=N)"))
    elif epochs is not None and (not is_integer(epochs) or (epochs < 1 and epochs != -1)):
        out.append(problem("trainer.max_epochs", epochs, "must be an integer >= 1 (or -1 with trainer.max_steps)",
                           "use e.g. trainer.max_epochs=72"))
    clip = trainer.get("gradient_clip_val")
    if clip is not None and (not is_number(clip) or clip < 0):
        out.append(problem("trainer.gradient_clip_val", clip, "must be >= 0 or null", "use 0.1 (RT-DETR) or null"))
    algo = trainer.get("gradient_clip_algorithm", "norm")
    if algo not in ("norm", "value"):
        out.append(problem("trainer.gradient_clip_algorithm", algo, "is unknown", "use 'norm' (RT-DETR) or 'value'"))
    every = trainer.get("check_val_every_n_epoch", 1)
    if every is not None and (not is_integer(every) or every < 1):
        out.append(problem("trainer.check_val_every_n_epoch", every, "must be an integer >= 1 or null",
                           "use 1 to validate every epoch, N for every N epochs"))
    return out


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


def is_auto(value: Any) -> bool:
    """Whether ``value`` is neo's ``auto`` (any case, spaces around allowed)."""
    return isinstance(value, str) and value.strip().lower() == AUTO


def channels_last_problems(value: Any) -> list[str]:
    """The problem of a ``channels_last`` value that is neither true, false nor ``auto`` (torch-free)."""
    if isinstance(value, bool) or is_auto(value):
        return []
    return [problem("channels_last", value, "must be true, false or auto",
                    "use channels_last=auto (the machine decides), true or false")]
