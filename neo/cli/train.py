"""`neo-train`: compose the config (pkg://conf, train.yaml), train, print the summary table.

    neo-train experiment=cpu_demo              # the demo `make train` runs
    neo-train experiment=cpu_demo debug=fast   # one batch through everything
    neo-train experiment=cpu_demo ckpt_path=auto
    neo-train -m experiment=sweep_res_lr       # a resolution x lr grid, summary table at the end
Every run writes ``summary.json`` into its run folder. Exit codes: 0 finished, 1 failed (bad config,
non-finite loss, error; in a ``-m`` sweep: any run failed), 130 interrupted (Ctrl-C / SIGTERM; an
interrupt checkpoint is written and named; in a sweep it stops the sweep).
In a ``-m`` sweep a failed run does not stop the sweep: it is recorded with its error and the next
point runs; the task returns the run's best val AP (the objective ``hparams_search=optuna`` maximises).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from neo.sweeps.dirnames import register_resolvers
from neo.sweeps.invocation import record_untouched_point

if TYPE_CHECKING:
    from neo.training.report import TrainSummary

register_resolvers()  # ${neo.dirname:...} in conf/hydra/default.yaml: before Hydra resolves hydra.sweep


@dataclass
class Outcome:
    """How a training run ended: exit code, its summary (None if it failed before training) and error."""

    code: int
    summary: TrainSummary | None = None
    error: str | None = None
    untouched: bool = False  # refused, or already finished: the run folder stays exactly as it was

    @property
    def status(self) -> str:
        if self.untouched:
            return "already finished" if self.code == 0 else "refused"
        if self.code == 0:
            return "finished"
        return "interrupted" if self.code == 130 else "failed"

    @property
    def best_ap(self) -> float | None:
        """Best val AP of a finished run (None when it failed or never validated)."""
        metrics = self.summary.metrics if self.summary is not None else {}
        return float(metrics["AP"]) if self.code == 0 and "AP" in metrics else None


def execute(cfg: DictConfig) -> Outcome:
    """Train from a composed config, print the outcome, return it (never raises for training errors)."""
    from rich.console import Console

    from neo.data.coco import DatasetError
    from neo.training.config_check import ConfigError
    from neo.training.module import NonFiniteLossError
    from neo.training.report import print_summary
    from neo.training.run import train
    from neo.training.run_folder import RunFolderTaken, finished_run, print_finished, summary_from_record

    console = Console(stderr=False)
    try:
        finished = finished_run(cfg)
        if finished is not None:  # ckpt_path=auto on a finished run: say so, show it, change nothing
            print_finished(finished)
            return Outcome(0, summary_from_record(finished.record, finished.run_dir, "already finished"),
                           untouched=True)
        summary = train(cfg)
    except RunFolderTaken as exc:  # another run's checkpoints are there: refuse, write nothing
        console.print(f"[bold red]neo-train:[/bold red] {exc}", highlight=False)
        return Outcome(1, error=f"{type(exc).__name__}: {exc}", untouched=True)
    except (ConfigError, DatasetError) as exc:  # one paragraph naming the value and the fix: no traceback
        console.print(f"[bold red]neo-train:[/bold red] {exc}", highlight=False)
        return Outcome(1, error=f"{type(exc).__name__}: {exc}")
    except NonFiniteLossError as exc:
        console.print(f"[bold red]neo-train stopped:[/bold red] {exc}", highlight=False)
        _print_interrupt_checkpoint(console, cfg)
        return Outcome(1, error=f"NonFiniteLossError: {exc}")
    except Exception as exc:
        console.print_exception(max_frames=8)
        console.print("[bold red]neo-train failed[/bold red] (traceback above).", highlight=False)
        _print_interrupt_checkpoint(console, cfg)
        return Outcome(1, error=f"{type(exc).__name__}: {exc}")
    print_summary(summary, console)
    if summary.status not in ("finished", "already finished"):
        _print_interrupt_checkpoint(console, cfg)
        return Outcome(130, summary)
    return Outcome(0, summary)


def run(cfg: DictConfig) -> int:
    """Train from a composed config; returns the process exit code (used by tests)."""
    return execute(cfg).code


def _print_interrupt_checkpoint(console, cfg: DictConfig) -> None:
    from pathlib import Path

    path = Path(cfg.paths.checkpoint_dir) / "interrupted.ckpt"
    last = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    if path.is_file():
        console.print(f"Last good state saved to {path}. Continue with: neo-train <same overrides> ckpt_path=auto",
                      soft_wrap=True)
    elif last.is_file():
        console.print(f"Last regular checkpoint: {last}. Continue with: neo-train <same overrides> ckpt_path=auto",
                      soft_wrap=True)


def quiet_duplicate_logs() -> None:
    """Lightning prints through its own handler; stop the same records reaching Hydra's console handler too."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).propagate = False


def _save_summary(cfg: DictConfig, outcome: Outcome, overrides: list[str]) -> None:
    """``summary.json`` in the run folder (Hydra made it; a run that never got one writes nothing)."""
    from pathlib import Path

    from neo.training.report import summary_record, write_summary_json

    run_dir = Path(cfg.paths.run_dir)
    if not run_dir.is_dir():
        return
    record = summary_record(outcome.summary, status=outcome.status, error=outcome.error,
                            run_name=str(cfg.run_name), overrides=overrides)
    record["run_dir"] = record.get("run_dir") or str(run_dir)
    try:
        write_summary_json(run_dir, record)
    except OSError as exc:
        print(f"neo-train: could not write {run_dir}/summary.json ({exc})", file=sys.stderr)


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    from neo.sweeps.job import current_job, use_job_dir
    from neo.training.launch_check import LaunchError, check_multirun_launch

    quiet_duplicate_logs()
    job = current_job()
    if job.multirun:
        use_job_dir(cfg, job)
        try:
            check_multirun_launch(cfg)
        except LaunchError as exc:
            print(f"neo-train: {exc}", file=sys.stderr)
            _save_summary(cfg, Outcome(1, error=f"LaunchError: {exc}"), job.overrides)
            sys.exit(1)  # SystemExit passes through Hydra: the whole sweep stops here, before any training
    outcome = execute(cfg)
    if not outcome.untouched:
        _save_summary(cfg, outcome, job.overrides)
    elif job.multirun:
        record_untouched_point(job, outcome.status, outcome.error)
    if outcome.code == 130 or (outcome.code and not job.multirun):
        sys.exit(outcome.code)  # Ctrl-C / SIGTERM stops a sweep too; a failed sweep point does not
    return outcome.best_ap


def main() -> None:
    """Console-script entry point."""
    _hydra_main()


if __name__ == "__main__":
    main()
