"""How many CPU cores this process may use (shared by data loading defaults and run settings)."""

from __future__ import annotations

import os


def available_cores() -> int:
    """CPU cores this process may run on: its affinity mask, so a SLURM allocation or taskset limit counts."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
