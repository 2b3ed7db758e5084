"""`neo-eval`: COCO metrics of a checkpoint (EMA or raw weights) on a split; metrics + detections JSON.

    neo-eval checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt [weights=raw] [split=test]
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


def run(cfg: DictConfig) -> int:
    """Evaluate and write ``metrics.json`` and ``detections.json`` into ``output_dir``; returns an exit code."""
    from neo.inference.evaluate import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"neo-eval: {exc}", file=sys.stderr)
        return 1
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"neo-eval: {result['checkpoint']} ({result['weights']} weights, {result['split']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result["metrics"].items():
        table.add_row(name, f"{value:.4f}")
    console = Console()
    console.print(table)
    console.print(f"metrics: {result['metrics_file']}\ndetections: {result['detections_file']}")
    return 0


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
