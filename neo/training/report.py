"""What a run shows a person: the resolved config as a rich tree, the closing summary table, and the same
figures as ``summary.json`` in the run folder (what the sweep summary of ``neo-train -m`` reads)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table
from rich.tree import Tree

from neo.console import stdout_console

# Top-level groups first, in this order; the remaining keys follow.
TREE_ORDER = ("data", "model", "optim", "trainer", "callbacks", "logger", "storage", "paths")


@rank_zero_only
def print_config_tree(cfg: DictConfig, console: Console | None = None) -> None:
    """Print the resolved config, one branch per group (rank zero only)."""
    console = console or stdout_console()
    tree = Tree("[bold]config[/bold]", guide_style="dim")
    keys = [k for k in TREE_ORDER if k in cfg] + [k for k in cfg if k not in TREE_ORDER]
    for key in keys:
        branch = tree.add(f"[bold cyan]{key}[/bold cyan]")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else repr(value)
        branch.add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    console.print(tree)


@dataclass
class TrainSummary:
    """Figures of a finished (or stopped) training run."""

    metrics: dict[str, float] = field(default_factory=dict)
    images_per_s: float = 0.0
    epochs: int = 0
    steps: int = 0
    wall_time_s: float = 0.0
    best_checkpoint: Path | str | None = None  # a bucket URL when only the bucket has it
    last_checkpoint: Path | None = None
    tensorboard_dir: Path | None = None
    run_dir: Path | None = None
    status: str = "finished"
    unsynced: list[str] = field(default_factory=list)  # checkpoints the bucket did not receive (CheckpointSync)
    resumed_from: Path | None = None   # the checkpoint fit started from (ckpt_path), None when fresh
    start_epoch: int | None = None     # epoch / optimizer step stored in that checkpoint
    start_step: int | None = None
    precision: str | None = None       # Lightning precision the validation (hence AP) ran at, e.g. "bf16-mixed"
    bucket_notes: list[str] = field(default_factory=list)  # the bucket was not checked / objects not replaced
    machine: dict = field(default_factory=dict)  # MachineSettings.record(): precision/channels_last, asked vs chosen, why
    throughput: dict = field(default_factory=dict)  # neo.training.speed_check.Throughput.record(), warm-up excluded
    speed_notes: list[str] = field(default_factory=list)  # throughput far below what this machine can do, and why

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        for key in ("best_checkpoint", "last_checkpoint", "tensorboard_dir", "run_dir", "resumed_from"):
            out[key] = None if out[key] is None else str(out[key])
        return out


def summary_record(summary: TrainSummary | None, status: str | None = None, error: str | None = None,
                   **context: object) -> dict:
    """The ``summary.json`` document of a run (JSON-safe; non-finite numbers become null).

    Keys: ``status`` (finished | interrupted | failed), ``error`` (``Type: message`` or null), the
    :class:`TrainSummary` fields (``metrics`` holds the best validation's AP, AP50, ...; ``epochs``,
    ``steps``, ``wall_time_s``, ``images_per_s``, checkpoints, ``resumed_from``/``start_epoch``/
    ``start_step``) and any ``context`` given (``run_name``, ``overrides``).
    """
    record: dict = summary.as_dict() if summary is not None else {}
    record["status"] = status or record.get("status") or "failed"
    record["error"] = error
    record.update(context)
    return _json_safe(record)


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@rank_zero_only
def write_summary_json(run_dir: str | Path, record: dict) -> Path:
    """:func:`neo.training.run_folder.write_summary` on rank zero only (the other ranks write nothing)."""
    from neo.training.run_folder import write_summary

    return write_summary(run_dir, record)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _show(path: Path | None) -> str:
    """A path as a user would type it: relative to the working directory when inside it."""
    if path is None:
        return "-"
    if "://" in str(path):  # a bucket URL (a checkpoint only the bucket has)
        return str(path)
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def machine_line(machine: Mapping) -> str:
    """``32-true (auto: AVX2, no native bf16); channels_last on (AVX2: oneDNN channels-last kernels)``."""
    precision, requested = machine.get("precision"), machine.get("precision_requested")
    head = f"{precision} (auto: {machine.get('precision_reason')})" if requested == "auto" else f"{precision} (asked for)"
    layout = "on" if machine.get("channels_last") else "off"
    return f"{head}; channels_last {layout} ({machine.get('channels_last_reason')})"


def speed_line(throughput: Mapping, notes: list[str]) -> str:
    """The loop's images/s against its step-only rate, then one line per likely cause of slowness."""
    lines = []
    if throughput.get("timed_batches"):
        lines.append(f"{throughput['images_per_s']:.2f} images/s in the loop, {throughput['step_images_per_s']:.2f} "
                     f"for the steps alone (warm-up excluded)")
    else:
        lines.append("not measured (too few training batches after warm-up)")
    if notes:
        lines += [f"[red]far below this machine:[/red] {escape(note)}" for note in notes]
    elif throughput.get("timed_batches"):
        lines.append("no slowdown found (data, precision, threads, load)")
    return "\n".join(lines)


@rank_zero_only
def print_summary(summary: TrainSummary, console: Console | None = None) -> None:
    """The closing table: AP, AP50, images/s, epochs, wall time, best checkpoint, TensorBoard dir."""
    console = console or stdout_console()
    table = Table(title=f"neo-train: {summary.status}", show_header=False, title_style="bold")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")  # paths wrap instead of being cut: they are meant to be copied
    metrics: Mapping[str, float] = summary.metrics
    table.add_row("AP (val, best)", _fmt(metrics.get("AP")))
    table.add_row("AP50 (val, best)", _fmt(metrics.get("AP50")))
    if summary.precision:  # neo-eval's default (32-true) can differ from it, and so can its AP
        table.add_row("AP measured at precision", summary.precision)
    if summary.machine:
        table.add_row("precision, memory format", machine_line(summary.machine))
    table.add_row("training images/s", f"{summary.images_per_s:.2f}" if summary.images_per_s else "-")
    if summary.throughput or summary.speed_notes:
        table.add_row("speed check", speed_line(summary.throughput, summary.speed_notes))
    table.add_row("epochs / optimizer steps", f"{summary.epochs} / {summary.steps}")
    minutes, seconds = divmod(int(round(summary.wall_time_s)), 60)
    table.add_row("wall time", f"{minutes}m {seconds:02d}s")
    table.add_row("best checkpoint", _show(summary.best_checkpoint))
    table.add_row("last checkpoint", _show(summary.last_checkpoint))
    table.add_row("TensorBoard", f"tensorboard --logdir {_show(summary.tensorboard_dir)}" if summary.tensorboard_dir else "-")
    if summary.resumed_from is not None:
        table.add_row("resumed from", f"{_show(summary.resumed_from)} (epoch {summary.start_epoch}, "
                                      f"step {summary.start_step})")
    table.add_row("run folder", _show(summary.run_dir))
    if summary.unsynced:
        table.add_row("[red]not in the bucket[/red]",
                      "\n".join(summary.unsynced) + "\n(kept locally; push with neo-weights push FILE)")
    if summary.bucket_notes:
        table.add_row("[red]bucket[/red]", "\n".join(summary.bucket_notes))
    console.print(table)


@rank_zero_only
def print_best_class_results(run_dir: str | Path | None, since: float = 0.0, console: Console | None = None) -> None:
    """The per-class table of the best validation (``<run_dir>/results/per_class.json``), if this run wrote
    or kept one: a file older than ``since`` (a time.time() value) is another run's and is not shown."""
    from neo.evaluation.per_class import PER_CLASS_JSON, print_class_table, read_class_results

    folder = Path(run_dir) / "results" if run_dir is not None else None
    if folder is None or not (folder / PER_CLASS_JSON).is_file() or (folder / PER_CLASS_JSON).stat().st_mtime < since:
        return
    rows, context = read_class_results(folder)
    title = (f"per class, best validation (epoch {context.get('epoch')}, {context.get('images')} images): "
             f"{_show(folder)}")
    print_class_table(rows, title, console)
