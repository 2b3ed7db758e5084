"""Rich progress bars for fsspec transfers: an fsspec ``Callback`` that drives a ``rich.progress`` task."""

from __future__ import annotations

from fsspec.callbacks import Callback
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from neo.console import stderr_console


def transfer_progress(console: Console | None = None) -> Progress:
    """A rich Progress showing bytes, speed and ETA (use as a context manager)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=console or stderr_console(), transient=False)


class RichCallback(Callback):
    """fsspec callback updating one task of ``progress`` (size set by fsspec, bytes by relative updates)."""

    def __init__(self, progress: Progress, description: str):
        super().__init__()
        self.progress = progress
        self.task = progress.add_task(description, total=None)

    def call(self, *args, **kwargs):
        self.progress.update(self.task, total=self.size, completed=self.value)
