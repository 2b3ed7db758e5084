"""The sweep summary: one row per run folder of a sweep, sorted by val AP, as CSV and Markdown.

A run folder is any folder under the sweep folder holding Hydra's ``.hydra/overrides.yaml`` or neo's
``summary.json`` (written by every ``neo-train`` run: status, error, best val metrics, epochs, wall
time, images/s, checkpoints; see :func:`neo.training.report.summary_record`). A folder without
``summary.json`` is a run that is still going or was killed; it is listed as such, never dropped.
The table describes one invocation of ``neo-train -m`` (see :mod:`neo.sweeps.invocation`): runs that
earlier invocations left in the same folder are listed apart in ``summary.md`` ("Earlier runs"), never
mixed into this invocation's rows, its count or its exit code.

Columns: ``run`` (folder relative to the sweep folder), one column per override whose value differs
between runs (``data.resolution``, ``optim.lr``, ...), status, AP, AP50, epochs, steps, wall time,
images/s, best checkpoint, error; the CSV adds every run's full override list.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neo.files import write_text_atomic
from neo.sweeps.invocation import is_current, started_at, untouched_point
from neo.training.run_folder import SUMMARY_JSON, summary_path

CSV_NAME = "summary.csv"
MARKDOWN_NAME = "summary.md"
NO_SUMMARY = "no summary (running, or killed)"


@dataclass
class RunRow:
    """One run of a sweep, as the table shows it."""

    run: str
    overrides: list[str] = field(default_factory=list)
    status: str = NO_SUMMARY
    error: str | None = None
    ap: float | None = None
    ap50: float | None = None
    epochs: int | None = None
    steps: int | None = None
    wall_time_s: float | None = None
    images_per_s: float | None = None
    best_checkpoint: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("finished", "already finished")

    def override_map(self) -> dict[str, str]:
        """``{"optim.lr": "0.0001", ...}`` from ``["optim.lr=0.0001", ...]``."""
        pairs = (o.split("=", 1) for o in self.overrides if "=" in o)
        return {k: v for k, v in pairs}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_run(folder: Path, sweep_dir: Path) -> RunRow:
    """The row of one run folder (from ``summary.json`` and ``.hydra/overrides.yaml``)."""
    row = RunRow(run=folder.relative_to(sweep_dir).as_posix())
    overrides_file = folder / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        row.overrides = [str(o) for o in (yaml.safe_load(overrides_file.read_text()) or [])]
    record = _read_json(summary_path(folder))
    if record is None:
        if summary_path(folder).exists():
            row.status, row.error = "failed", f"unreadable {SUMMARY_JSON}"
        return row
    row.overrides = row.overrides or [str(o) for o in record.get("overrides") or []]
    row.status = str(record.get("status") or "failed")
    row.error = record.get("error")
    metrics = record.get("metrics") or {}
    row.ap, row.ap50 = _number(metrics.get("AP")), _number(metrics.get("AP50"))
    row.epochs = record.get("epochs")
    row.steps = record.get("steps")
    row.wall_time_s = _number(record.get("wall_time_s"))
    row.images_per_s = _number(record.get("images_per_s"))
    best = record.get("best_checkpoint")
    row.best_checkpoint = str(best) if best else None
    return row


def find_run_folders(sweep_dir: Path) -> list[Path]:
    """Run folders under ``sweep_dir`` (not descending into a run folder once found)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(sweep_dir):
        here = Path(root)
        if here != sweep_dir and (SUMMARY_JSON in files or (here / ".hydra" / "overrides.yaml").is_file()):
            found.append(here)
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def _ranked(rows: list[RunRow]) -> list[RunRow]:
    return sorted(rows, key=lambda r: (not r.ok, -(r.ap if r.ap is not None else -1.0), r.run))


def collect(sweep_dir: str | Path, since: float | None = None) -> tuple[list[RunRow], list[RunRow]]:
    """(this invocation's runs, earlier runs in the folder), each best val AP first, failed/unfinished last.

    ``since``: the invocation's start (:func:`neo.sweeps.invocation.started_at`); None counts every run.
    A point this invocation refused or found finished keeps its folder as it was; its row says so.
    """
    sweep_dir = Path(sweep_dir)
    current, earlier = [], []
    for folder in find_run_folders(sweep_dir):
        row = read_run(folder, sweep_dir)
        if not is_current(folder, since):
            earlier.append(row)
            continue
        point = untouched_point(sweep_dir, row.run, since)
        if point is not None:
            row.status, row.error = str(point.get("status")), point.get("error")
            if row.status != "already finished":  # a refused point shows no figures of the run it protected
                row.ap = row.ap50 = row.epochs = row.steps = row.wall_time_s = row.images_per_s = None
                row.best_checkpoint = None
        elif since is not None and not _summary_is_current(folder, since):
            row = RunRow(run=row.run, overrides=row.overrides)  # started again, no summary of this invocation yet
        current.append(row)
    return _ranked(current), _ranked(earlier)


def _summary_is_current(folder: Path, since: float) -> bool:
    try:
        return summary_path(folder).stat().st_mtime >= since
    except OSError:
        return False


def varying_keys(rows: list[RunRow]) -> list[str]:
    """Override keys whose value is not the same in every row, in first-seen order."""
    maps = [r.override_map() for r in rows]
    keys = list(dict.fromkeys(k for m in maps for k in m))
    return [k for k in keys if len({m.get(k) for m in maps}) > 1]


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _cells(row: RunRow, keys: list[str]) -> dict[str, str]:
    values = row.override_map()
    cells = {"run": row.run, **{k: values.get(k, "") for k in keys}}
    cells.update(status=row.status, AP=_fmt(row.ap), AP50=_fmt(row.ap50),
                 epochs="" if row.epochs is None else str(row.epochs),
                 steps="" if row.steps is None else str(row.steps))
    return cells


def to_csv(rows: list[RunRow]) -> str:
    """CSV text: run, varying override keys, status, AP, AP50, epochs, steps, wall_time_s, images_per_s,
    best_checkpoint, error, overrides (all of the run's overrides, space separated)."""
    keys = varying_keys(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", *keys, "status", "AP", "AP50", "epochs", "steps", "wall_time_s", "images_per_s",
                     "best_checkpoint", "error", "overrides"])
    for row in rows:
        cells = _cells(row, keys)
        writer.writerow([*cells.values(), _fmt(row.wall_time_s, 1), _fmt(row.images_per_s, 2),
                         row.best_checkpoint or "", row.error or "", " ".join(row.overrides)])
    return out.getvalue()


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(rows: list[RunRow], sweep_dir: str | Path | None = None, max_error: int = 160) -> str:
    """Markdown table; the run column is left out when override columns already tell the runs apart."""
    keys = varying_keys(rows)
    header = ([] if keys else ["run"]) + keys + ["status", "AP", "AP50", "epochs", "steps", "wall time",
                                                  "images/s", "best checkpoint", "error"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = _cells(row, keys)
        if keys:
            cells.pop("run")
        best = row.best_checkpoint or ""
        if best and sweep_dir is not None:
            try:
                best = Path(best).resolve().relative_to(Path(sweep_dir).resolve()).as_posix()
            except ValueError:
                pass
        error = (row.error or "")[:max_error]
        values = [*cells.values(), _clock(row.wall_time_s), _fmt(row.images_per_s, 1), best, error]
        lines.append("| " + " | ".join(_md(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


def write_tables(sweep_dir: str | Path) -> tuple[list[RunRow], Path, Path]:
    """Write this invocation's rows as ``summary.csv`` + ``summary.md`` (which also lists earlier runs of the
    folder, apart) into the sweep folder; returns this invocation's rows."""
    sweep_dir = Path(sweep_dir)
    rows, earlier = collect(sweep_dir, started_at(sweep_dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = sweep_dir / CSV_NAME, sweep_dir / MARKDOWN_NAME
    markdown = to_markdown(rows, sweep_dir)
    if earlier:
        markdown += (f"\n## Earlier runs in this folder ({len(earlier)}, from other invocations; "
                     f"not part of the table above)\n\n{to_markdown(earlier, sweep_dir)}")
    # atomic: several SLURM jobs may refresh the same table at once
    write_text_atomic(csv_path, to_csv(rows))
    write_text_atomic(md_path, markdown)
    return rows, csv_path, md_path
