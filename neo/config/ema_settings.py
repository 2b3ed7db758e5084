"""``callbacks.ema`` arguments, checked torch-free (the ``EMA`` callback raises the same messages)."""

from __future__ import annotations

from typing import Any

from neo.config_problems import is_integer, is_number, problem


def ema_problems(decay: Any = 0.9999, ramp: Any = 2000.0, start_step: Any = 0) -> list[str]:
    """Every invalid EMA argument: decay in (0, 1), ramp >= 0, start_step an integer >= 0."""
    out = []
    if not is_number(decay) or not 0 < decay < 1:
        out.append(problem("callbacks.ema.decay", decay, "must be in (0, 1)", "use 0.9999 (RT-DETR) or callbacks.ema=null"))
    if not is_number(ramp) or ramp < 0:
        out.append(problem("callbacks.ema.ramp", ramp, "must be >= 0", "use 2000 (RT-DETR); 0 disables the warm-up ramp"))
    if not is_integer(start_step) or start_step < 0:
        out.append(problem("callbacks.ema.start_step", start_step, "must be an integer >= 0", "use 0"))
    return out
