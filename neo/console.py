"""The two consoles neo prints on (results on stdout; user errors and transfer progress on stderr), and the one
way a user error is printed.

Every command starts with ``neo.cli.output.setup_console``, which makes both anew (so they read the terminal
and ``COLUMNS`` of this command); library code that prints (tables, summaries, progress bars) takes
:func:`stdout_console` or :func:`stderr_console` instead of making its own ``Console()``. The stdout console is
rich's global console, the one rich's progress bars and log handler use by default, so a log line appears
above a live bar instead of breaking it. Torch-free.
"""

from __future__ import annotations

import sys

import rich
from rich.console import Console
from rich.text import Text

_stderr: Console | None = None


def stdout_console() -> Console:
    """The console on stdout (rich's global console): results, tables, summaries, log lines of Hydra commands."""
    return rich.get_console()


def stderr_console() -> Console:
    """The console on stderr: user errors, transfer progress bars."""
    global _stderr
    if _stderr is None:
        _stderr = Console(stderr=True)
    return _stderr


def reset_consoles() -> None:
    """Make both consoles anew from the current terminal and environment (a command's first step).

    The stdout console is reconfigured in place, so a reference taken earlier prints on the new settings.
    """
    global _stderr
    rich.reconfigure()
    _stderr = Console(stderr=True)


def print_user_error(command: str, error: BaseException | str) -> int:
    """``<command>: <message>`` on stderr, credentials redacted, never wrapped, no traceback; returns 1, the exit
    code of every user error. ``error``: a :class:`neo.config_problems.UserError` (or a library's ValueError
    naming the value) or its text; a KeyError prints its message without the quotes ``str()`` adds."""
    from neo.storage.redact import redact  # the one redaction of credentials in URLs and overrides

    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    sys.stdout.flush()  # what the command printed before comes first
    stderr_console().print(Text.assemble((f"{command}: ", "bold red"), redact(message)), soft_wrap=True,
                           highlight=False)
    return 1
