"""How every neo command talks to its user: one console setup, one way to print a user error.

``setup_console()`` is the one console setup of the seven commands, called as each starts its work (in the Hydra
commands after Hydra set up logging and after the configuration check, which never needs Lightning):
- both consoles of :mod:`neo.console` are made anew for this command (stdout: results; stderr: user errors and
  transfer progress);
- log records reach the terminal once; on a terminal through a ``rich`` handler on the console the
  progress bar draws on, so a background upload's line appears above the bar instead of breaking it;
  a command without Hydra logging gets one handler on stderr (warnings and errors);
- Lightning's INFO chatter (accelerator availability, its advertisements) is dropped; its warnings stay;
- third-party warnings that name no action for a neo user (an ``srun`` hint when not under SLURM, a
  deprecation inside Lightning) are silenced. Every other warning still shows.
The run's log file (``<run>/<command>.log``) keeps every record.

``print_user_error(command, error)`` (defined in :mod:`neo.console`, so a Hydra callback can use it too) prints a
mistake the user can fix (a :class:`neo.config_problems.UserError`, or a library's ValueError/FileNotFoundError
naming the value: ``USER_ERRORS``) as ``<command>: <message>`` on stderr, credentials redacted, no traceback; the
command then exits 1.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

from rich.logging import RichHandler
from rich.markup import escape

from neo.config_problems import UserError
from neo.console import print_user_error, reset_consoles, stderr_console, stdout_console

__all__ = ["USER_ERRORS", "plain", "print_user_error", "setup_console", "start_line"]

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
# What a command answers with one paragraph instead of a traceback: neo's user errors, and the ValueError or
# FileNotFoundError a library call raises for a bad value or a missing file (their message names it).
USER_ERRORS = (UserError, ValueError, FileNotFoundError)
PLAIN_FORMAT = "%(levelname)s %(name)s: %(message)s"  # the stderr handler of a command without Hydra logging


class DropLightningNoise(logging.Filter):
    """Drops Lightning INFO records matching ``LIGHTNING_NOISE``; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith("lightning"):
            return True
        return not LIGHTNING_NOISE.search(record.getMessage())


def silence_warnings() -> None:
    for pattern in SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def setup_console(*, lightning: bool = False, use_rich: bool | None = None) -> None:
    """The one console setup of every neo command: fresh consoles, log records once, no unactionable noise.

    lightning: the command runs Lightning (neo-train, neo-eval, neo-predict): Lightning's own handlers are removed so each of
    its records prints once, and its INFO chatter is dropped (imports Lightning: a command that never needs it
    passes False). use_rich: None (default) switches to a rich handler only when stdout is a terminal: there a
    live progress bar needs it; in a pipe or a log file rich would wrap long lines (paths, URLs) at 80 columns,
    so the plain handler stays and only the filter is added.
    """
    reset_consoles()
    silence_warnings()
    _route_logging(use_rich)
    if lightning:
        _quiet_lightning()


def _route_logging(use_rich: bool | None) -> None:
    """Terminal log handlers through rich on a terminal, with the Lightning noise filter; one on stderr when the
    command has no logging of its own (the argparse commands)."""
    noise = DropLightningNoise()
    root = logging.getLogger()
    hydra_logging = bool(root.handlers)  # Hydra's job logging (or a caller's own handlers) is in place
    if not hydra_logging:  # neo-weights, neo-data, neo-export, neo-bench: warnings and errors on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    terminal = [h for h in root.handlers if type(h) is logging.StreamHandler]  # not FileHandlers
    console = stdout_console() if hydra_logging else stderr_console()
    use_rich = console.is_terminal if use_rich is None else use_rich
    if use_rich and terminal:
        for handler in terminal:
            root.removeHandler(handler)
        level = min(h.level for h in terminal)
        terminal = [RichHandler(level=level, console=console, show_time=False, show_path=False, markup=False)]
        root.addHandler(terminal[0])
    elif not terminal:
        terminal = [h for h in root.handlers if isinstance(h, RichHandler)]
    for handler in terminal:  # the terminal only: the log file keeps every record
        if not any(isinstance(f, DropLightningNoise) for f in handler.filters):
            handler.addFilter(noise)


def _quiet_lightning() -> None:
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
