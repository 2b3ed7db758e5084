"""`neo-eval`: COCO metrics of a checkpoint (EMA or raw weights) on a split, per class too.

    neo-eval checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt
    neo-eval checkpoint=best.ckpt weights=raw split=test precision=bf16-mixed data=coco data.root=/data/coco
Writes metrics.json, detections.json, per_class.csv/.json, pr_curves.png and confusion_matrix.png into
``output_dir`` and prints the metrics, the precision AP was measured at and the per-class table. A bad
checkpoint file (missing, empty, truncated, not a neo checkpoint), a mistyped key ("did you mean weights?") or
a bad value is one paragraph on stderr naming it and the fix; exit 1, no traceback.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


def option_problems(cfg: DictConfig) -> str | None:
    """Unknown keys ("did you mean") and a missing checkpoint= in one message, or None; imports no torch."""
    from neo.cli.required import option_problems

    return option_problems(cfg, "eval", "neo-eval", {"checkpoint": "neo checkpoint: path, URL or bare file name"},
                           "neo-eval checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt")


def run(cfg: DictConfig) -> int:
    """Check the options, evaluate and write the results into ``output_dir``; returns an exit code."""
    from neo.cli.output import print_user_error

    problems = option_problems(cfg)
    return print_user_error("neo-eval", problems) if problems else evaluate(cfg)


def evaluate(cfg: DictConfig) -> int:
    """Evaluate a config whose options were checked and print the results; returns an exit code."""
    from neo.cli.output import USER_ERRORS, plain, print_user_error
    from neo.console import stdout_console
    from neo.inference.evaluate import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(cfg)
    except USER_ERRORS as exc:  # CheckpointError, DatasetError, bad options: one paragraph
        return print_user_error("neo-eval", exc)
    from rich.table import Table

    from neo.evaluation.per_class import print_class_table

    console = stdout_console()
    title = f"neo-eval: {result['split']}, {result['weights']} weights (precision {result['precision']})"
    table = Table(title=title, title_justify="left", min_width=len(title))
    table.add_column("metric", min_width=6)
    table.add_column("value", justify="right", min_width=6)
    for name, value in result["metrics"].items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    console.print(precision_note(result["precision"], result.get("training_precision")), highlight=False)
    if result["class_results"]:
        print_class_table(result["class_results"], f"per class ({result['images_evaluated']} images)", console)
    console.print(f"checkpoint: {plain(result['checkpoint'])}\nresults:    {plain(result['output_dir'])} "
                  "(metrics.json, detections.json, per_class.csv, pr_curves.png, confusion_matrix.png)",
                  highlight=False, soft_wrap=True)
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
    from neo.cli.required import start_checked

    start_checked("neo-eval", cfg, option_problems)
    code = evaluate(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    """Console-script entry point: ``neo-eval [hydra flags] key=value ...``; a mistyped key gets "did you mean"."""
    from neo.cli.override_errors import run_hydra_main

    run_hydra_main("neo-eval", _hydra_main)


if __name__ == "__main__":
    main()
