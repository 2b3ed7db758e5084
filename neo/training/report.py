"""What a run shows a person: the resolved config as a rich tree, and the closing summary table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.tree import Tree

# Top-level groups first, in this order; the remaining keys follow.
TREE_ORDER = ("data", "model", "optim", "trainer", "callbacks", "logger", "storage", "paths")


@rank_zero_only
def print_config_tree(cfg: DictConfig, console: Console | None = None) -> None:
    """Print the resolved config, one branch per group (rank zero only)."""
    console = console or Console()
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
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    tensorboard_dir: Path | None = None
    run_dir: Path | None = None
    status: str = "finished"

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        for key in ("best_checkpoint", "last_checkpoint", "tensorboard_dir", "run_dir"):
            out[key] = None if out[key] is None else str(out[key])
        return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@rank_zero_only
def print_summary(summary: TrainSummary, console: Console | None = None) -> None:
    """The closing table: AP, AP50, images/s, epochs, wall time, best checkpoint, TensorBoard dir."""
    console = console or Console()
    table = Table(title=f"neo-train: {summary.status}", show_header=False, title_style="bold")
    table.add_column("what", style="bold")
    table.add_column("value")
    metrics: Mapping[str, float] = summary.metrics
    table.add_row("AP (val, best)", _fmt(metrics.get("AP")))
    table.add_row("AP50 (val, best)", _fmt(metrics.get("AP50")))
    table.add_row("training images/s", f"{summary.images_per_s:.2f}")
    table.add_row("epochs / optimizer steps", f"{summary.epochs} / {summary.steps}")
    minutes, seconds = divmod(int(round(summary.wall_time_s)), 60)
    table.add_row("wall time", f"{minutes}m {seconds:02d}s")
    table.add_row("best checkpoint", str(summary.best_checkpoint or "-"))
    table.add_row("last checkpoint", str(summary.last_checkpoint or "-"))
    table.add_row("TensorBoard", f"tensorboard --logdir {summary.tensorboard_dir}" if summary.tensorboard_dir else "-")
    table.add_row("run folder", str(summary.run_dir or "-"))
    console.print(table)
