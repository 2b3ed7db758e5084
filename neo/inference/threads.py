"""CPU thread settings for inference commands: one pool for torch, sized to the cores that are free.

On a CPU, torch's intra-op pool and OpenCV's own pool (decode, resize) each start one thread per core;
together, on a machine other processes already load, they ask for several times the cores there are
and OpenMP's spinning threads wait for each other. Measured with ``neo-predict`` on 16 1080p images
(tiny model, 640x360) on a 2-core machine at load 11: 2 torch threads 43 s, 1 thread 16 s.
``threads=auto`` therefore gives torch the cores this process may use minus the ones already busy (the
1-minute load average), at least one, and OpenCV one thread (images are decoded one at a time between
model calls, so its pool would only compete with torch's). On an idle machine that is every core.
"""

from __future__ import annotations

import os

import cv2
import torch


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a container's or SLURM job's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """Cores not already busy: ``cores`` (default :func:`available_cores`) minus the 1-minute load average
    (default ``os.getloadavg()``), rounded, between 1 and ``cores``."""
    cores = available_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this platform
            load = 0.0
    return int(min(cores, max(1, round(cores - load))))


def parse_threads(value: object, key: str = "threads") -> int:
    """``auto`` -> :func:`free_cores`; a positive integer as given; anything else is refused."""
    if value is None or str(value).strip().lower() == "auto":
        return free_cores()
    try:
        threads = int(str(value))
    except ValueError:
        threads = 0
    if threads < 1 or str(threads) != str(value).strip():
        raise ValueError(f"{key}={value!r} is not a thread count: use auto (the free ones of the "
                         f"{available_cores()} cores this process may use) or a whole number >= 1, "
                         f"e.g. {key}=1 on a machine shared with others")
    return threads


def configure_threads(value: object, key: str = "threads") -> int:
    """Set torch's CPU threads to ``parse_threads(value)`` and OpenCV's to 1; returns the torch count."""
    threads = parse_threads(value, key)
    torch.set_num_threads(threads)
    cv2.setNumThreads(1)
    return threads
