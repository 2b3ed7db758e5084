"""Progress display of ``neo-predict``: images (or frames) done, total, images/s and time left."""

from __future__ import annotations

from pathlib import Path

import cv2
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from neo.checkpoints.load import IMAGE_SUFFIXES, VIDEO_SUFFIXES


class ImagesPerSecondColumn(ProgressColumn):
    """``12.3 images/s``: images done over the time since the start (model loading excluded), ``-`` before
    the first batch. (rich's own estimate needs several updates; a run of one batch would show 0.)"""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not task.completed or not elapsed:
            return Text("- images/s", style="progress.data.speed")
        return Text(f"{task.completed / elapsed:.1f} images/s", style="progress.data.speed")


def count_source(source: str | Path) -> int | None:
    """Images in a folder or one file, frames of a video (None when the container does not say)."""
    source = Path(source)
    if source.is_dir():
        return sum(1 for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if source.suffix.lower() in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(source))
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        capture.release()
        return frames if frames > 0 else None
    return 1


def prediction_progress(console: Console | None = None, enabled: bool = True) -> Progress:
    """A rich Progress: description, bar, done/total, images/s, elapsed, remaining (a context manager)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        ImagesPerSecondColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=not enabled, transient=False,
    )
