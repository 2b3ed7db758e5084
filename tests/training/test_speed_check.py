"""The summary says when training runs far below what this machine can do, and names the likely cause."""

from __future__ import annotations

import io

from rich.console import Console

from neo.training.machine import machine_settings
from neo.training.precision import AVX2_CPU, AVX512_BF16_CPU, choose_precision
from neo.training.report import TrainSummary, print_summary
from neo.training.speed_check import Throughput, speed_notes

FAST = Throughput(images=400, batches=50, step_s=40.0, wait_s=2.0, load_1min=2.0)      # 9.5 vs 10 images/s
STARVED = Throughput(images=400, batches=50, step_s=40.0, wait_s=30.0, load_1min=2.0)  # 5.7 vs 10 images/s


def _notes(figures: Throughput, warning: str | None = None, threads: int = 1, workers: int = 1) -> list[str]:
    return speed_notes(figures, precision_warning=warning, torch_threads=threads, num_workers=workers, cores=2)


def test_a_run_at_the_machines_pace_has_no_note() -> None:
    assert _notes(FAST) == []
    assert round(FAST.images_per_s, 2) == 9.52 and FAST.step_images_per_s == 10.0


def test_a_starved_loop_is_named_data_bound_with_the_fix() -> None:
    (note,) = _notes(STARVED)
    assert note.startswith("data-bound: 5.71 images/s against 10.00 for the steps alone")
    assert "43% of the time" in note and "raise data.num_workers" in note


def test_bf16_on_an_avx2_cpu_is_named_with_what_to_use_instead() -> None:
    warning = choose_precision("bf16-mixed", on_gpu=False, cuda_bf16=False, cpu=AVX2_CPU).warning
    (note,) = _notes(FAST, warning)
    assert note.startswith("slow precision: trainer.precision=bf16-mixed on this CPU (AVX2, no native bf16)")
    assert "trainer.precision=auto" in note
    assert choose_precision("bf16-mixed", on_gpu=False, cuda_bf16=False, cpu=AVX512_BF16_CPU).warning is None


def test_oversubscription_and_a_busy_machine_are_named() -> None:
    notes = _notes(Throughput(images=400, batches=50, step_s=40.0, wait_s=2.0, load_1min=5.0), threads=2, workers=1)
    assert notes[0].startswith("oversubscribed: 2 torch threads + 1 data workers on 2 cores: set torch_threads=1")
    assert notes[1].startswith("busy machine: 1-minute load 5.0 on 2 cores, about 2.0 of it from other processes")
    assert _notes(Throughput(images=400, batches=50, step_s=40.0, wait_s=2.0, load_1min=2.9)) == []  # own load


def test_summary_table_shows_precision_choice_and_speed_check() -> None:
    machine = machine_settings("bf16-mixed", "auto", "cpu", cuda=(False, False), cpu=AVX2_CPU)
    notes = _notes(STARVED, machine.precision.warning)
    summary = TrainSummary(precision="bf16-mixed", machine=machine.record(), throughput=STARVED.record(),
                           speed_notes=notes)
    out = io.StringIO()
    print_summary(summary, Console(file=out, width=300, color_system=None))
    text = out.getvalue()
    assert "bf16-mixed (asked for); channels_last on (AVX2: oneDNN channels-last kernels)" in text
    assert "5.71 images/s in the loop, 10.00 for the steps alone (warm-up excluded)" in text
    assert "far below this machine: slow precision: trainer.precision=bf16-mixed" in text
    assert "far below this machine: data-bound" in text
    auto = machine_settings("auto", "auto", "cpu", cuda=(False, False), cpu=AVX2_CPU)
    out = io.StringIO()
    print_summary(TrainSummary(machine=auto.record(), throughput=FAST.record()), Console(file=out, width=300))
    assert "32-true (auto: AVX2, no native bf16)" in out.getvalue()
    assert "no slowdown found" in out.getvalue()
