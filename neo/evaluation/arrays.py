"""Predictions and targets as numpy: the one conversion the evaluation, output and drawing code share."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_numpy(value: Any, dtype: type) -> np.ndarray:
    """``value`` (a tensor on any device, an array, a list) as a numpy array of ``dtype``; shape kept."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)
