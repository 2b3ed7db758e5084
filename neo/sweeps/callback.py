"""Hydra callback that keeps a sweep's summary table (``summary.csv`` + ``summary.md``) in the sweep folder.

Registered in ``conf/hydra/default.yaml`` under ``hydra.callbacks.sweep_summary``. It acts in ``-m``
sweeps only:

* ``on_multirun_start``: creates the sweep folder (the Optuna study database lives there) and marks the
  start of this invocation (:mod:`neo.sweeps.invocation`): the table covers its runs only.
* ``on_job_end`` (in the process that ran the job: the local one, or the SLURM job under submitit):
  if the job failed before writing its ``summary.json``, writes one with the error; then refreshes
  the table, so it exists even if the sweep is stopped half-way.
* ``on_multirun_end`` (in the launching process, after every job): writes the table from the run
  folders on disk (so it also sees SLURM jobs), prints it, and exits 1 when a run failed and
  ``exit_on_failure`` is set (``hparams_search=optuna`` unsets it: a diverged trial is a result).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from neo.sweeps.invocation import mark_start
from neo.sweeps.table import RunRow, to_markdown, write_tables
from neo.training.run_folder import summary_path, write_summary

log = logging.getLogger(__name__)


def _is_multirun(config: DictConfig) -> bool:
    mode = config.hydra.get("mode") if "hydra" in config else None
    return mode == RunMode.MULTIRUN or str(mode) == "MULTIRUN"


def _rank_zero() -> bool:
    """False in the non-zero tasks of a multi-task SLURM job (each runs the job and its callbacks)."""
    return int(os.environ.get("SLURM_PROCID", os.environ.get("RANK", "0")) or 0) == 0


def _failure_message(job_return: Any) -> str | None:
    """The job's exception as ``Type: message`` when Hydra recorded it as failed."""
    if job_return is None or getattr(job_return, "status", None) is None or job_return.status.name != "FAILED":
        return None
    error = job_return._return_value
    return f"{type(error).__name__}: {error}"


class SweepSummary(Callback):
    """Writes (and at the end prints) the summary table of a ``-m`` sweep; see the module docstring."""

    def __init__(self, exit_on_failure: bool = True, print_table: bool = True) -> None:
        self.exit_on_failure = exit_on_failure
        self.print_table = print_table

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Create the sweep folder first (the Optuna study's sqlite file lives there) and mark this invocation's
        start: its table lists only the runs it (re)started."""
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        mark_start(sweep_dir)

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        if not _is_multirun(config) or not _rank_zero():
            return
        try:
            run_dir = Path(str(config.hydra.runtime.output_dir))
            error = _failure_message(job_return)
            if error is not None and not summary_path(run_dir).exists():
                record = {"status": "failed", "error": error, "overrides": list(job_return.overrides or []),
                          "run_dir": str(run_dir)}
                write_summary(run_dir, record)
            write_tables(config.hydra.sweep.dir)
        except Exception as exc:  # noqa: BLE001 - the table must never break the sweep
            log.warning("sweep summary not updated after this job: %s: %s", type(exc).__name__, exc)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows, csv_path, md_path = write_tables(sweep_dir)
        failed = [r for r in rows if not r.ok]
        if self.print_table:
            print(self.render(rows, sweep_dir, csv_path, md_path), flush=True)
        if failed and self.exit_on_failure:
            sys.exit(1)

    @staticmethod
    def render(rows: list[RunRow], sweep_dir: Path, csv_path: Path, md_path: Path) -> str:
        """The printed summary: a title line, the Markdown table, where the files are."""
        failed = sum(not r.ok for r in rows)
        title = f"neo-train sweep summary: {len(rows)} runs of this invocation" + (
            f", {failed} not finished" if failed else "")
        return f"\n{title} ({sweep_dir})\n\n{to_markdown(rows, sweep_dir)}\nwritten: {csv_path}\n         {md_path}\n"
