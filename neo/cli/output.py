"""What neo's commands print around the work: log lines through rich, and nothing a user cannot act on.

``quiet_console()`` is called first thing in every command's Hydra main, after Hydra set up logging:
- log records reach the terminal once; on a terminal through a ``rich`` handler on the console the
  progress bar draws on, so a background upload's line appears above the bar instead of breaking it;
- Lightning's INFO chatter (accelerator availability, its advertisements) is dropped; its warnings stay;
- third-party warnings that name no action for a neo user (an ``srun`` hint when not under SLURM, a
  deprecation inside Lightning) are silenced. Every other warning still shows.
The run's log file (``<run>/<command>.log``) keeps every record.
"""

from __future__ import annotations

import logging
import re
import warnings

from rich.logging import RichHandler
from rich.markup import escape

# Lightning INFO lines that carry no action for a neo user.
LIGHTNING_NOISE = re.compile(
    r"^(GPU|TPU|HPU|IPU) available:|^💡 Tip:|^`Trainer\.(fit|validate|test)` stopped: `max_(epochs|steps)=|"
    r"^You are using a CUDA device .* that has Tensor Cores|^Trainer already configured with model summary|"
    r"^`Trainer\(limit_(train|val|test)_batches=.*\)` was configured|^Loading `train_dataloader` to estimate"
)
# Third-party warnings (message regex) that are not the user's to fix.
SILENCED_WARNINGS = (
    r"The `srun` command is available on your system but is not used",  # printed whenever srun exists
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's own use of a torch API
    r".*does not have many workers which may be a bottleneck",  # neo sets data.num_workers on purpose
)
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")


class DropLightningNoise(logging.Filter):
    """Drops Lightning INFO records matching ``LIGHTNING_NOISE``; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith("lightning"):
            return True
        return not LIGHTNING_NOISE.search(record.getMessage())


def silence_warnings() -> None:
    for pattern in SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def quiet_console(use_rich: bool | None = None) -> None:
    """Route console logging through rich (once), drop Lightning's noise, silence unactionable warnings.

    use_rich: None (default) switches to a rich handler only when stdout is a terminal: there a live
    progress bar needs it; in a pipe or a log file rich would wrap long lines (paths, URLs) at 80 columns,
    so the plain handler stays and only the filter is added.
    """
    from rich import get_console

    silence_warnings()
    noise = DropLightningNoise()
    root = logging.getLogger()
    terminal = [h for h in root.handlers if type(h) is logging.StreamHandler]  # not FileHandlers
    use_rich = get_console().is_terminal if use_rich is None else use_rich
    if use_rich and terminal:
        for handler in terminal:
            root.removeHandler(handler)
        level = min(h.level for h in terminal)
        terminal = [RichHandler(level=level, show_time=False, show_path=False, markup=False)]
        root.addHandler(terminal[0])
    elif not terminal:
        terminal = [h for h in root.handlers if isinstance(h, RichHandler)]
    for handler in terminal:  # the terminal only: the log file keeps every record
        if not any(isinstance(f, DropLightningNoise) for f in handler.filters):
            handler.addFilter(noise)
    import lightning.pytorch  # noqa: F401  (importing it adds its handlers: remove them after, not before)

    for name in LIGHTNING_LOGGERS:  # Lightning's own handlers would print every record a second time
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


def plain(text: object) -> str:
    """``text`` with rich markup escaped: brackets in values ("[1080, 1920]") print as they are."""
    return escape(str(text))


def start_line(command: str, run_dir: object) -> str:
    """One line instead of the config tree: the command's overrides and where its outputs go.

    ``neo-train experiment=cpu_demo trainer.max_epochs=2 -> outputs/runs/cpu_demo (print_config=true: full config)``
    """
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    folder = Path(str(run_dir))
    try:
        folder = folder.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    from neo.storage.redact import redact

    arguments = redact(" ".join(overrides)) or "(defaults)"
    return f"{command} {arguments} -> {folder}  (print_config=true prints the full config)"
