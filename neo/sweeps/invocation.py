"""Which run folders of a sweep folder belong to this ``neo-train -m`` invocation.

Several invocations share one sweep folder (``outputs/sweeps/<run_name>/``): a re-run, a sweep over other
values, a debug sweep before the real one. The summary table and the exit code must describe this
invocation's runs only, so:

- ``on_multirun_start`` writes ``<sweep>/.neo-sweep/started``; its modification time (set by the same file
  system the jobs write to, so SLURM nodes with other clocks agree) is the invocation's start.
- Hydra writes every job's ``.hydra/overrides.yaml`` when the job starts: a run folder whose file is not
  older than the marker is a run of this invocation (even one killed before writing ``summary.json``).
- A point that did not run and left its folder untouched (refused: another run's checkpoints are there;
  already finished with ``ckpt_path=auto``) records that in ``<sweep>/.neo-sweep/points/<folder>.json``
  instead of in the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neo.files import write_text_atomic
from neo.training.run_folder import summary_path

if TYPE_CHECKING:
    from neo.sweeps.job import JobInfo

BOOKKEEPING = ".neo-sweep"
MARKER = "started"
POINTS = "points"


def mark_start(sweep_dir: str | Path) -> float:
    """Write the start marker of a new invocation; returns its modification time."""
    folder = Path(sweep_dir) / BOOKKEEPING
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    marker.write_text("the newest neo-train -m invocation in this folder started when this file was written\n")
    return marker.stat().st_mtime


def started_at(sweep_dir: str | Path) -> float | None:
    """Start time of the newest invocation (None for a folder no invocation marked: every run counts)."""
    try:
        return (Path(sweep_dir) / BOOKKEEPING / MARKER).stat().st_mtime
    except OSError:
        return None


def _modified(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def is_current(folder: Path, since: float | None) -> bool:
    """True when the run folder was (re)started by the invocation that began at ``since``."""
    if since is None:
        return True
    started = _modified(folder / ".hydra" / "overrides.yaml") or _modified(summary_path(folder))
    return started is not None and started >= since


def _point_file(sweep_dir: Path, run: str) -> Path:
    return sweep_dir / BOOKKEEPING / POINTS / f"{run.replace('/', '__')}.json"


def record_untouched_point(job: JobInfo, status: str, error: str | None) -> None:
    """Record a sweep point that left its run folder as it was (``refused`` / ``already finished``)."""
    if job.sweep_dir is None or job.subdir is None:
        return
    record = {"status": status, "error": error, "overrides": list(job.overrides)}
    write_text_atomic(_point_file(job.sweep_dir, job.subdir), json.dumps(record, indent=2))


def untouched_point(sweep_dir: Path, run: str, since: float | None) -> dict[str, Any] | None:
    """The record of :func:`record_untouched_point` for run folder ``run``, if this invocation wrote it."""
    path = _point_file(sweep_dir, run)
    written = _modified(path)
    if written is None or (since is not None and written < since):
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
