"""The one way the tests run neo's console scripts: in this process, or as a subprocess where the process
boundary is what a test is about (signals, exit codes of a real process, ``--help``, packaging).

Both return a ``subprocess.CompletedProcess`` (``returncode``, ``stdout``, ``stderr`` as text), so a test can
switch between them without touching its assertions.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import signal
import subprocess
import sys
import tomllib
import traceback
import warnings
from functools import cache
from pathlib import Path

BIN = Path(sys.executable).parent
# What every command the tests start gets: one OpenMP thread (2 shared cores), no warnings, a wide console.
QUIET = {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
ENV = {**os.environ, **QUIET}
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, name))


@cache
def console_scripts() -> dict[str, str]:
    """``{"neo-train": "neo.cli.train:main", ...}`` from this tree's pyproject.toml."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    return dict(tomllib.loads(pyproject.read_text())["project"]["scripts"])


def _entry_point(command: str):
    module, _, name = console_scripts()[command].partition(":")
    return getattr(importlib.import_module(module), name)


def run_command(command: str, *args: str, cwd: Path | str, env: dict[str, str] | None = None,
                timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
    """``command ARGS`` (a console script such as ``neo-train``) as a user runs it: a new process in ``cwd``.

    env: the environment (default: this process's); ``QUIET`` and ``extra_env`` are added on top.
    """
    return subprocess.run([str(BIN / command), *args], cwd=cwd, env=_environment(env, extra_env),
                          capture_output=True, text=True, timeout=timeout)


def start_command(command: str, *args: str, cwd: Path | str, env: dict[str, str] | None = None, stdout=None,
                  **extra_env: str) -> subprocess.Popen:
    """``command ARGS`` started in the background (for signals); stdout and stderr merged into ``stdout``
    (default: a pipe read as text)."""
    return subprocess.Popen([str(BIN / command), *args], cwd=cwd, env=_environment(env, extra_env),
                            stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.STDOUT, text=True)


def _environment(env: dict[str, str] | None, extra: dict[str, str]) -> dict[str, str]:
    return {**(os.environ if env is None else env), **QUIET, **extra}


def run_cli(command: str, *args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None,
            timeout: float | None = None, **extra_env: str) -> subprocess.CompletedProcess:
    """``command ARGS`` through its console-script entry point in this process, as a new process would run it.

    The same argv, working directory and environment (``env`` replaces ``os.environ`` for the call, ``QUIET``
    and ``extra_env`` on top); stdout/stderr captured; ``SystemExit`` becomes the exit code and an uncaught
    exception prints its traceback and exits 1, as Python does. Everything a command changes in the
    interpreter (argv, cwd, environment, warning filters, signal handlers, Hydra's global state, cached
    bucket filesystems, log handlers on the captured streams or on its log file) is put back afterwards.
    ``timeout`` is accepted so a call switches between the two runners unchanged; pytest's own --timeout
    bounds an in-process run.
    """
    from hydra.core.global_hydra import GlobalHydra

    main = _entry_point(command)
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv, os.getcwd()
    saved_signals = {s: signal.getsignal(s) for s in _SIGNALS}
    handlers_before = _handlers()
    root = logging.getLogger()
    saved_root = list(root.handlers), root.level
    root.handlers = []  # a new process starts without pytest's capture handlers: warnings reach stderr
    root.setLevel(logging.WARNING)
    environment = _environment(env, extra_env)
    GlobalHydra.instance().clear()
    _forget_hydra_config()
    os.environ.clear()
    os.environ.update(environment)
    _forget_filesystems()
    sys.argv = [command, *args]
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                result = main()
                code = int(result or 0) if isinstance(result, int | None) else 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
            except Exception:  # noqa: BLE001 - a real process prints the traceback and exits 1
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        for number, handler in saved_signals.items():
            if handler is not None:
                signal.signal(number, handler)
        GlobalHydra.instance().clear()
        _forget_hydra_config()
        _forget_filesystems()
        for handler in root.handlers:  # the command's root handlers end with it, as they would with its process
            if handler not in saved_root[0] and isinstance(handler, logging.FileHandler):
                handler.close()
        root.handlers = saved_root[0]
        root.setLevel(saved_root[1])
        _drop_handlers(handlers_before, (out, err))
        _reset_train_flags()
    return subprocess.CompletedProcess([command, *args], code, out.getvalue(), err.getvalue())


def _forget_hydra_config() -> None:
    """A new process has no ``HydraConfig`` of an earlier run (Hydra callbacks that run before the job read it)."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None


def _forget_filesystems() -> None:
    """A new process has no bucket filesystem cached from another environment (endpoint, credentials)."""
    protocols = sys.modules.get("neo.storage.protocols")
    if protocols is not None:
        protocols.clear_instance_caches()


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values()
                                   if isinstance(item, logging.Logger))]


def _handlers() -> set[tuple[int, int]]:
    return {(id(logger), id(handler)) for logger in _loggers() for handler in logger.handlers}


def _drop_handlers(before: set[tuple[int, int]], streams: tuple[io.StringIO, ...]) -> None:
    """Remove the handlers the command added that write to its captured streams or to a log file (a new
    process would not have them: the next command's records are not this one's)."""
    for logger in _loggers():
        for handler in list(logger.handlers):
            if (id(logger), id(handler)) in before:
                continue
            if isinstance(handler, logging.FileHandler) or getattr(handler, "stream", None) in streams:
                logger.removeHandler(handler)
                if isinstance(handler, logging.FileHandler):
                    handler.close()


def _reset_train_flags() -> None:
    """neo-train keeps ``--check`` in a module flag for its Hydra main: a new process starts without it."""
    train = sys.modules.get("neo.cli.train")
    if train is not None and hasattr(train, "_check_only"):
        train._check_only = False


def output(result: subprocess.CompletedProcess) -> str:
    """A finished command's stdout followed by its stderr."""
    return result.stdout + result.stderr


def tail(result: subprocess.CompletedProcess, chars: int = 4000) -> str:
    """The end of a finished command's stdout and stderr, for assertion messages."""
    return result.stdout[-chars:] + "\n--- stderr ---\n" + result.stderr[-chars:]


def flat(text: str) -> str:
    """``text`` with every run of whitespace made one space (the console wraps long messages)."""
    return " ".join(text.split())
