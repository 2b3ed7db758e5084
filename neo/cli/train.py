"""`neo-train`: compose the config (pkg://conf, train.yaml), train, print the summary table.

    neo-train experiment=cpu_demo ckpt_path=auto   # the demo `make train` runs: continues it or shows it finished
    neo-train experiment=cpu_demo debug=fast       # one batch through everything, in its own folder
    neo-train -m experiment=sweep_res_lr       # a resolution x lr grid, summary table at the end
    neo-train --check experiment=cpu_demo data.root=/data/mine   # validate only: errors or "configuration OK"
The configuration is checked before torch, Lightning or timm load, so a bad override is answered in
about a second; a mistyped key gets the closest valid keys ("did you mean optim.lr?"). A mistake the user can
fix (a bad value, a refused run folder, an unusable dataset) is one paragraph on stderr, exit 1, no traceback.
Every run that passes the configuration check writes ``summary.json`` into its run folder (a refused
configuration writes nothing, so a typo never replaces an earlier run's summary; a refused sweep point
is recorded as a failed row). Exit codes: 0 finished, 1 failed (bad config,
non-finite loss, error; in a ``-m`` sweep: any run failed), 130 interrupted (Ctrl-C / SIGTERM; an
interrupt checkpoint is written and named; in a sweep it stops the sweep).
In a ``-m`` sweep a failed run does not stop the sweep: it is recorded with its error and the next
point runs; the task returns the run's best val AP (the objective ``hparams_search=optuna`` maximises).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from neo.sweeps.dirnames import register_resolvers
from neo.sweeps.invocation import record_untouched_point

if TYPE_CHECKING:
    from neo.training.report import TrainSummary

register_resolvers()  # ${neo.dirname:...} in conf/hydra/default.yaml: before Hydra resolves hydra.sweep

CHECK_FLAG = "--check"
_check_only = False  # set by main() when --check is on the command line


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
    from lightning.pytorch.utilities import rank_zero_only

    from neo.cli.output import plain, print_user_error, start_line
    from neo.config_problems import UserError
    from neo.console import stdout_console
    from neo.training.module import NonFiniteLossError
    from neo.training.report import print_best_class_results, print_summary
    from neo.training.run import train
    from neo.training.run_folder import (
        finished_run,
        print_finished,
        stopped_run,
        summary_from_record,
    )

    console = stdout_console()
    started = time.time()
    if not cfg.get("print_config") and rank_zero_only.rank == 0:
        console.print(start_line("neo-train", cfg.paths.run_dir), highlight=False, soft_wrap=True, markup=False)
    try:
        finished = finished_run(cfg)
        if finished is not None:  # ckpt_path=auto on a finished run: say so, show it, change nothing
            print_finished(finished)
            return Outcome(0, summary_from_record(finished.record, finished.run_dir, "already finished"),
                           untouched=True)
        summary = train(cfg)
    except UserError as exc:  # one paragraph naming the value and the fix, on stderr: no traceback
        print_user_error("neo-train", exc)
        # another run's checkpoints are there (RunFolderTaken, BucketNotChecked): refused, nothing written
        return Outcome(1, error=f"{type(exc).__name__}: {exc}", untouched=_refused_folder(exc))
    except NonFiniteLossError as exc:
        console.print(f"[bold red]neo-train stopped:[/bold red] {plain(exc)}", highlight=False)
        _print_interrupt_checkpoint(console, cfg)
        return Outcome(1, error=f"NonFiniteLossError: {exc}")
    except Exception as exc:
        console.print_exception(max_frames=8)
        console.print("[bold red]neo-train failed[/bold red] (traceback above).", highlight=False)
        _print_interrupt_checkpoint(console, cfg)
        return Outcome(1, error=f"{type(exc).__name__}: {exc}")
    if summary.status == "already finished":  # resumed, but a limit was already reached: nothing trained
        stopped = stopped_run(cfg)
        if stopped is not None:
            print_finished(stopped)
            return Outcome(0, summary_from_record(stopped.record, stopped.run_dir, "already finished"),
                           untouched=True)
    print_best_class_results(summary.run_dir, since=0.0 if summary.resumed_from else started, console=console)
    print_summary(summary, console)
    if summary.status not in ("finished", "already finished"):
        _print_interrupt_checkpoint(console, cfg)
        return Outcome(130, summary)
    return Outcome(0, summary)


def _refused_folder(exc: BaseException) -> bool:
    """The run folder was refused before anything was written to it (its summary.json stays as it was)."""
    from neo.training.run_folder import RunFolderTaken

    return isinstance(exc, RunFolderTaken)


def run(cfg: DictConfig) -> int:
    """Train from a composed config; returns the process exit code (used by tests)."""
    return execute(cfg).code


def _print_interrupt_checkpoint(console, cfg: DictConfig) -> None:
    from pathlib import Path

    path = Path(cfg.paths.checkpoint_dir) / "interrupted.ckpt"
    last = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    if path.is_file():
        console.print(f"Last good state saved to {path}. Continue with: neo-train <same overrides> ckpt_path=auto",
                      soft_wrap=True, markup=False, highlight=False)
    elif last.is_file():
        console.print(f"Last regular checkpoint: {last}. Continue with: neo-train <same overrides> ckpt_path=auto",
                      soft_wrap=True, markup=False, highlight=False)


def _save_summary(cfg: DictConfig, outcome: Outcome, overrides: list[str]) -> None:
    """``summary.json`` in the run folder (Hydra made it; a run that never got one writes nothing)."""
    from pathlib import Path

    from neo.training.report import summary_record, write_summary_json
    from neo.training.run_folder import summary_path

    run_dir = Path(cfg.paths.run_dir)
    if not run_dir.is_dir():
        return
    from neo.storage.redact import redact_all

    record = summary_record(outcome.summary, status=outcome.status, error=outcome.error,
                            run_name=str(cfg.run_name), overrides=overrides)
    record = redact_all(record)  # no credential reaches summary.json (ckpt_path=..., a typo of a URL)
    record["run_dir"] = record.get("run_dir") or str(run_dir)
    try:
        write_summary_json(run_dir, record)
    except OSError as exc:
        print(f"neo-train: could not write {summary_path(run_dir)} ({exc})", file=sys.stderr)


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    from neo.cli.output import print_user_error, setup_console
    from neo.cli.override_errors import restore_hydra_error_mode
    from neo.sweeps.job import current_job, use_job_dir

    restore_hydra_error_mode()  # composition is done: errors from here on are neo's
    job = current_job()
    if job.multirun:
        use_job_dir(cfg, job)
    from neo.config.check import early_config_error

    problems = early_config_error(cfg)
    if problems:
        print_user_error("neo-train", problems)
        if not job.multirun:
            sys.exit(1)  # nothing was written: a typo never replaces an earlier run's summary.json
        _save_summary(cfg, Outcome(1, error=f"ConfigError: {problems}"), job.overrides)
        return None  # a bad sweep point is a failed row; the sweep goes on
    if _check_only:
        print("neo-train: configuration OK (nothing was run; drop --check to train).")
        return None
    setup_console(lightning=True)  # after the check: it imports Lightning, which a refused configuration never needs
    if job.multirun:
        from neo.sweeps.launch_check import LaunchError, check_multirun_launch

        try:
            check_multirun_launch(cfg)
        except LaunchError as exc:
            print_user_error("neo-train", exc)
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
    """Console-script entry point: ``neo-train [--check] [hydra flags] [overrides]``."""
    global _check_only
    from neo.cli.override_errors import run_hydra_main

    if CHECK_FLAG in sys.argv[1:]:
        _check_only = True
        sys.argv = [a for a in sys.argv if a != CHECK_FLAG]
    run_hydra_main("neo-train", _hydra_main)  # a mistyped key gets "did you mean"


if __name__ == "__main__":
    main()
