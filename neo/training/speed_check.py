"""Is this run training as fast as this machine can? A measured expectation and the likely cause when not.

:class:`ThroughputCheck` (a Lightning callback the run assembler always adds) splits the wall time of every
training batch after ``warmup`` into the step itself (``on_train_batch_start`` -> ``on_train_batch_end``:
forward, loss, backward, optimizer, the other callbacks' per-step work) and the wait before it (the data
loader and the loop between batches); validation and each epoch's first fetch are excluded. The step-only
rate is the quick measured expectation: what the loop would reach if batches were ready when asked for.

:func:`speed_notes` turns those figures and the machine facts into one line per likely cause, shown in the
summary table and ``summary.json`` (``throughput``):

- the loop reaches < ``FAR_BELOW`` (0.7) of its step-only rate: the data pipeline is the bottleneck;
- the precision is bf16 on a CPU without native bf16 (several times slower than fp32 there);
- torch threads + data workers exceed the cores (OpenMP stalls);
- the machine was busy (the 1-minute load minus this run's threads and workers above half the cores).

``neo-bench guard`` compares the same loop figure with ``neo-bench train`` (the model alone) in one job.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from lightning.pytorch.callbacks import Callback

FAR_BELOW = 0.7  # loop images/s under this fraction of the step-only images/s: the loop is starved
WARMUP_BATCHES = 5  # untimed first batches of a fit: allocator growth, oneDNN kernel creation, worker start


@dataclass
class Throughput:
    """Training-loop figures after warm-up: ``images``, seconds in steps and waiting between them."""

    images: int = 0
    batches: int = 0
    step_s: float = 0.0
    wait_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of this process (all its threads) over the same intervals
    load_1min: float | None = None  # the machine's 1-minute load average at the end of the first epoch
    notes: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        """The loop's rate: images over step + wait time (0 when nothing was timed)."""
        total = self.step_s + self.wait_s
        return self.images / total if total > 0 else 0.0

    @property
    def step_images_per_s(self) -> float:
        """The step-only rate (data ready at once): the expectation the loop is held against."""
        return self.images / self.step_s if self.step_s > 0 else 0.0

    @property
    def cpu_images_per_s(self) -> float:
        """Images per CPU-second of this process: what other processes on the machine cannot slow down."""
        return self.images / self.cpu_s if self.cpu_s > 0 else 0.0

    def record(self) -> dict[str, Any]:
        return {"images_per_s": self.images_per_s, "step_images_per_s": self.step_images_per_s,
                "cpu_images_per_s": self.cpu_images_per_s,
                "timed_batches": self.batches, "wait_fraction": self.wait_s / max(self.step_s + self.wait_s, 1e-9),
                "load_1min": self.load_1min, "notes": list(self.notes)}


def speed_notes(figures: Throughput, *, precision_warning: str | None, torch_threads: int, num_workers: int,
                cores: int) -> list[str]:
    """One line per likely cause of a training rate far below what this machine can do (empty: none found)."""
    notes = []
    if precision_warning:
        notes.append(f"slow precision: {precision_warning}")
    if figures.batches and figures.images_per_s < FAR_BELOW * figures.step_images_per_s:
        share = figures.wait_s / (figures.step_s + figures.wait_s)
        notes.append(f"data-bound: {figures.images_per_s:.2f} images/s against {figures.step_images_per_s:.2f} for the "
                     f"steps alone; the loop waited for batches {share:.0%} of the time (data.num_workers="
                     f"{num_workers}, {cores} cores): raise data.num_workers or lighten data.augment")
    if num_workers and torch_threads + num_workers > cores:
        notes.append(f"oversubscribed: {torch_threads} torch threads + {num_workers} data workers on {cores} cores: "
                     f"set torch_threads={max(1, cores - num_workers)}")
    own = torch_threads + num_workers  # this run's own share of the load average
    if figures.load_1min is not None and figures.load_1min - own > 0.5 * cores:
        notes.append(f"busy machine: 1-minute load {figures.load_1min:.1f} on {cores} cores, about "
                     f"{figures.load_1min - own:.1f} of it from other processes: this run got less than the machine")
    return notes


class ThroughputCheck(Callback):
    """Times training batches after ``warmup`` (per fit) into step and wait time; see the module docstring."""

    def __init__(self, warmup: int = WARMUP_BATCHES) -> None:
        self.warmup = max(0, warmup)
        self.figures = Throughput()
        self._seen = 0
        self._last_end: float | None = None
        self._last_cpu: float | None = None
        self._start: float | None = None

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._last_end = self._last_cpu = None  # the first fetch of an epoch (worker start, prefetch) is not the loop's pace

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self._start = now
        if self._seen >= self.warmup and self._last_end is not None and self._last_cpu is not None:
            self.figures.wait_s += now - self._last_end
            self.figures.cpu_s += cpu - self._last_cpu
        self._last_cpu = cpu

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        if self._seen >= self.warmup and self._start is not None and self._last_cpu is not None:
            self.figures.step_s += now - self._start
            self.figures.cpu_s += cpu - self._last_cpu
            self.figures.batches += 1
            self.figures.images += int(batch[0].shape[0])
        self._seen += 1
        self._last_end, self._last_cpu = now, cpu

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._last_end = self._last_cpu = None  # validation and checkpointing follow: not training time
        if self.figures.load_1min is None and hasattr(os, "getloadavg"):
            self.figures.load_1min = os.getloadavg()[0]
