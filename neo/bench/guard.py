"""`neo-bench guard`: the demo trains as fast as this machine allows, checked with ratios of one job's figures.

Runs, in one job and on the same machine:

1. ``neo-bench train`` (the model + criterion + optimizer step alone, no data loading) with the demo's preset,
   size, batch, threads, memory format and the precision ``neo-train`` picks here, then a short one with the
   other precision (32-true <-> bf16-mixed);
2. ``neo-train experiment=cpu_demo`` itself for ``--warmup`` + up to ``--steps`` optimizer steps (fewer when
   they would not fit ``--budget-s`` at the bench's pace; at least 8), with its data pipeline, callbacks, EMA
   and logging (no validation, checkpoints or bucket pushes), timed after the warm-up batches;
3. the chosen precision's bench once more, so the bench figure brackets the neo-train run in time (and, when
   the two precisions are within 0.7-1.4x of each other, the other one again, first, so load drift cancels).

It prints every figure, per wall-clock second and per CPU-second of the training process, and fails (exit 1) when

- ``neo-train``'s images/s < ``--min-ratio`` (0.7) x the bench's at the same settings: the training loop
  around the model costs too much (per-step callbacks, global torch settings, data starvation, ...). Judged
  per CPU-second always, and per second unless the machine is busy (1-minute load minus this job's threads
  above half the cores): on a shared machine the wall clock measures the neighbours, the CPU time does not;
- the chosen precision is more than ``--max-slowdown`` (20 %) slower per CPU-second than the other one: the
  machine-aware choice (:mod:`neo.training.precision`) is wrong for this CPU, or a forced precision is the
  slow one.

Absolute speeds are never judged, so a slower machine cannot fail it and a faster one cannot hide a regression.
Extra arguments are Hydra overrides of the demo (``neo-bench guard trainer.precision=bf16-mixed``). Takes
2-3.5 minutes on 2 shared cores. ``make speed-guard`` runs it; CI runs it after ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from neo.cores import available_cores

EXPERIMENT = "experiment=cpu_demo"
MIN_RATIO = 0.7
MAX_SLOWDOWN = 0.2
CLOSE_CALL = (0.7, 1.4)  # chosen / other bench images/s in this range: measure both again, in reverse order
PROBE_STEPS = 3  # first, short measurement of the other precision (often several times slower)
MIN_STEPS = 8  # timed neo-train steps, whatever the budget
LABEL = 92  # width of the figure labels


@dataclass(frozen=True)
class Rate:
    """Images per wall-clock second, and per CPU-second of the training process (what other processes on a
    shared machine cannot slow down: the figure the guard judges)."""

    wall: float
    cpu: float


def mean(rates: list[Rate]) -> Rate:
    return Rate(sum(r.wall for r in rates) / len(rates), sum(r.cpu for r in rates) / len(rates))


@dataclass(frozen=True)
class DemoSettings:
    """What the bench needs to repeat the demo's step: preset, train size, batch, threads, classes, machine choice."""

    preset: str
    size: str          # "480x270" (W x H)
    batch: int
    accumulate: int
    threads: int | None
    num_classes: int
    precision: str     # resolved for this machine
    channels_last: bool
    cpu: str           # CpuCapability.describe()
    why: str           # PrecisionChoice.describe()


def demo_settings(overrides: list[str]) -> DemoSettings:
    """The demo's configuration (``experiment=cpu_demo`` + ``overrides``) resolved for this machine."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from neo.data.settings import train_sizes_of
    from neo.data.sizes import format_size
    from neo.training.machine import machine_settings

    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose(config_name="train", overrides=[EXPERIMENT, *overrides], return_hydra_config=True)
    preset = str(cfg.hydra.runtime.choices["model"])
    data = cfg.data
    plain = OmegaConf.to_container(data, resolve=True)
    sizes = train_sizes_of(plain["resolution"], plain.get("train_sizes"), plain.get("train_scales"))
    machine = machine_settings(cfg.trainer.precision, cfg.channels_last, cfg.trainer.accelerator)
    return DemoSettings(preset, format_size(max(sizes, key=lambda s: s[0] * s[1])), int(data.batch_size),
                        int(cfg.trainer.accumulate_grad_batches), cfg.get("torch_threads"), int(data.num_classes),
                        machine.precision.precision, machine.channels_last, machine.cpu.describe(),
                        machine.precision.describe())


def other_precision(precision: str) -> str:
    """The precision the chosen one is compared with."""
    return "bf16-mixed" if precision == "32-true" else "32-true"


def run_bench(settings: DemoSettings, precisions: list[str], steps: int, warmup: int, folder: Path,
              name: str) -> dict[str, Rate]:
    """``neo-bench train`` in a fresh process at the demo's settings: {precision: its rates}."""
    out = folder / f"{name}.json"
    command = [sys.executable, "-m", "neo.bench.train", "--preset", settings.preset, "--size", settings.size,
               "--batch", str(settings.batch), "--accumulate", str(settings.accumulate), "--num-classes",
               str(settings.num_classes), "--steps", str(steps), "--warmup", str(warmup), "--accelerator", "cpu",
               "--channels-last", "on" if settings.channels_last else "off", "--json", str(out),
               "--precision", *precisions]
    if settings.threads:
        command += ["--threads", str(settings.threads)]
    _run(command, folder / f"{name}.log")
    return {row["precision"]: Rate(float(row["images_per_s"]), float(row["cpu_images_per_s"]))
            for row in json.loads(out.read_text())["rows"]}


def run_neo_train(overrides: list[str], steps: int, warmup: int, folder: Path) -> dict:
    """``neo-train`` on the demo for ``warmup + steps`` steps; its summary.json ``throughput`` and ``machine``."""
    from neo.training.run_folder import read_summary
    from neo.training.speed_check import WARMUP_BATCHES

    if warmup != WARMUP_BATCHES:
        raise ValueError(f"--warmup={warmup}: neo-train excludes {WARMUP_BATCHES} warm-up batches; use that")
    command = [sys.executable, "-m", "neo.cli.train", EXPERIMENT, *overrides, "run_name=speed-guard",
               f"paths.output_dir={folder / 'outputs'}", f"trainer.max_steps={warmup + steps}",
               "trainer.max_time=00:00:03:00", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
               "sync_checkpoints=false", "logger=none", "callbacks.progress=null", "callbacks.best_checkpoint=null",
               "callbacks.last_checkpoint=null", "callbacks.image_grid=null", "callbacks.validation_results=null",
               "ckpt_path=null"]
    _run(command, folder / "neo-train.log")
    record = read_summary(folder / "outputs/runs/speed-guard")
    if record is None:
        raise RuntimeError(f"neo-train wrote no readable summary.json in {folder / 'outputs/runs/speed-guard'}; see "
                           f"{folder / 'neo-train.log'}")
    return {"throughput": record.get("throughput") or {}, "machine": record.get("machine") or {},
            "steps": record.get("steps")}


def _run(command: list[str], log: Path) -> None:
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"{' '.join(command[2:4])} ... exited {done.returncode}; its output ends:\n{tail}")


def verdict(train: Rate, bench: Rate, chosen: Rate, other: Rate, *, busy: bool, min_ratio: float,
            max_slowdown: float) -> list[str]:
    """The failures (empty: passed). ``train``/``bench``: neo-train and the bench at the chosen precision;
    ``chosen``/``other``: the bench at both precisions. CPU-time rates are always judged; the wall-clock ratio of
    neo-train to the bench too unless the machine was ``busy`` (other processes' load makes it noise)."""
    failures = []
    for kind, ours, theirs in (("per CPU-second", train.cpu, bench.cpu), ("per second", train.wall, bench.wall)):
        if kind == "per second" and busy:
            continue
        if theirs <= 0 or ours < min_ratio * theirs:
            failures.append(f"neo-train reaches {ours / max(theirs, 1e-9):.2f}x the bench's images {kind} "
                            f"(must be >= {min_ratio:.2f}x): the loop around the model is slowing training down")
    if chosen.cpu * (1 + max_slowdown) < other.cpu:
        failures.append(f"the chosen precision is {other.cpu / max(chosen.cpu, 1e-9):.2f}x slower than the other one "
                        f"(at most {1 + max_slowdown:.2f}x allowed): use trainer.precision=auto, or fix the choice "
                        f"in neo/training/precision.py for this CPU")
    return failures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-bench guard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=25, help="timed neo-train optimizer steps")
    parser.add_argument("--bench-steps", type=int, default=8, help="timed neo-bench train steps per precision")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first neo-train steps")
    parser.add_argument("--bench-warmup", type=int, default=3, help="untimed first neo-bench train steps")
    parser.add_argument("--budget-s", type=float, default=60.0,
                        help="neo-train's timed steps are cut to fit this many seconds at the bench's pace")
    parser.add_argument("--min-ratio", type=float, default=MIN_RATIO)
    parser.add_argument("--max-slowdown", type=float, default=MAX_SLOWDOWN)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the demo, e.g. trainer.precision=bf16-mixed")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    settings = demo_settings(args.overrides)
    other = other_precision(settings.precision)
    print(f"speed guard: {' '.join([EXPERIMENT, *args.overrides])} on a CPU {settings.cpu}: precision {settings.why}, "
          f"channels_last {settings.channels_last}; {settings.preset} {settings.size} batch {settings.batch}, "
          f"{settings.threads or 'default'} torch thread(s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="neo-speed-guard-") as tmp:
        folder = Path(tmp)
        chosen_before = run_bench(settings, [settings.precision], args.bench_steps, args.bench_warmup, folder,
                                  "bench-chosen")[settings.precision]
        other_first = run_bench(settings, [other], PROBE_STEPS, 1, folder, "bench-other")[other]
        step_s = settings.batch * settings.accumulate / max(chosen_before.wall, 1e-9)
        steps = max(MIN_STEPS, min(args.steps, int(args.budget_s / step_s) - args.warmup))
        train = run_neo_train(args.overrides, steps, args.warmup, folder)
        # a close call between the precisions is measured again in the reverse order (load drift cancels); the
        # chosen one again only when that is quick (a slow forced precision fails on the first figures anyway)
        close = CLOSE_CALL[0] <= chosen_before.cpu / max(other_first.cpu, 1e-9) <= CLOSE_CALL[1]
        again = [other] if close else []
        if args.bench_steps * step_s <= args.budget_s / 2:
            again.append(settings.precision)
        after = run_bench(settings, again, args.bench_steps, args.bench_warmup, folder, "bench-after") if again else {}
    figures = train["throughput"]
    ours = Rate(float(figures.get("images_per_s") or 0.0), float(figures.get("cpu_images_per_s") or 0.0))
    chosen_runs = [chosen_before] + ([after[settings.precision]] if settings.precision in after else [])
    other_runs = [other_first] + ([after[other]] if other in after else [])
    bench, other_rate = mean(chosen_runs), mean(other_runs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    busy = load - (settings.threads or available_cores()) - 1 > 0.5 * available_cores()

    def runs(rates: list[Rate]) -> str:
        return " / ".join(f"{r.wall:.2f}" for r in rates)

    print(f"  {'images/s':>{LABEL + 9}} {'per CPU-s':>10}")
    for label, rate in (
        (f"neo-train, {figures.get('timed_batches', 0)} steps after {args.warmup} warm-up ({settings.precision})", ours),
        (f"neo-bench train, {settings.precision} (chosen; runs before / after neo-train: {runs(chosen_runs)})", bench),
        (f"neo-bench train, {other} (the other precision; runs: {runs(other_runs)})", other_rate),
    ):
        print(f"  {label:<{LABEL}} {rate.wall:8.2f} {rate.cpu:10.2f}")
    skipped = f"; the second not judged: machine busy, 1-minute load {load:.1f}" if busy else ""
    print(f"  neo-train / bench = {ours.cpu / max(bench.cpu, 1e-9):.2f} per CPU-second, "
          f"{ours.wall / max(bench.wall, 1e-9):.2f} per second (each must be >= {args.min_ratio:.2f}{skipped}); "
          f"chosen / other precision = {bench.cpu / max(other_rate.cpu, 1e-9):.2f} per CPU-second "
          f"(must be >= {1 / (1 + args.max_slowdown):.2f})")
    for note in figures.get("notes") or []:
        print(f"  neo-train's own speed check: {note}")
    failures = verdict(ours, bench, bench, other_rate, busy=busy, min_ratio=args.min_ratio,
                       max_slowdown=args.max_slowdown)
    for failure in failures:
        print(f"speed guard FAILED: {failure}")
    print(f"speed guard: {'failed' if failures else 'passed'} in {time.perf_counter() - started:.0f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
