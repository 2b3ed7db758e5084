"""`neo-eval`: COCO metrics of a checkpoint (EMA or raw weights) on a split; metrics + detections JSON.

    neo-eval checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt [weights=raw] [split=test] [precision=bf16-mixed]

A bad checkpoint file (missing, empty, truncated, not a neo checkpoint) is one paragraph naming it and the
fix; exit 1, no traceback. The output states the precision AP was measured at.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


def run(cfg: DictConfig) -> int:
    """Evaluate and write ``metrics.json`` and ``detections.json`` into ``output_dir``; returns an exit code."""
    from neo.cli.required import missing_options
    from neo.inference.evaluate import evaluate_checkpoint

    missing = missing_options(cfg, "neo-eval", {"checkpoint": "neo checkpoint: path, URL or bare file name"},
                              "neo-eval checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt")
    if missing:
        print(f"neo-eval: {missing}", file=sys.stderr)
        return 1
    try:
        result = evaluate_checkpoint(cfg)
    except (FileNotFoundError, ValueError) as exc:  # CheckpointError, DatasetError, bad options: one paragraph
        print(f"neo-eval: {exc}", file=sys.stderr)
        return 1
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"neo-eval: {result['checkpoint']} ({result['weights']} weights, {result['split']}, "
                        f"precision {result['precision']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result["metrics"].items():
        table.add_row(name, f"{value:.4f}")
    console = Console()
    console.print(table)
    console.print(precision_note(result["precision"], result.get("training_precision")), highlight=False)
    console.print(f"metrics: {result['metrics_file']}\ndetections: {result['detections_file']}")
    return 0


def precision_note(measured: str, trained: str | None) -> str:
    """One line: the precision AP was measured at, and how it compares to the training run's validation."""
    if trained is None or trained == measured:
        same = "" if trained is None else " (the precision training validated at)"
        return f"AP measured at precision {measured}{same}"
    return (f"AP measured at precision {measured}; training validated at {trained}, so its AP differs slightly "
            f"(precision={trained} reproduces it)")


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    code = run(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    """Console-script entry point."""
    _hydra_main()


if __name__ == "__main__":
    main()
