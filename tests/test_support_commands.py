"""The test suite's two command runners agree: ``run_cli`` (in this process) answers what ``run_command`` (a new
process) answers, and leaves this interpreter as it found it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from tests.support.commands import console_scripts, run_cli, run_command

BAD = ("optim.lr=0", "data.batch_size=0", "+optim.lrr=1e-3")


def test_every_console_script_has_an_entry_point_run_cli_can_call() -> None:
    from tests.support.commands import _entry_point

    assert set(console_scripts()) == {"neo-train", "neo-eval", "neo-predict", "neo-export", "neo-weights", "neo-data",
                                      "neo-bench"}
    assert all(callable(_entry_point(name)) for name in console_scripts())


def test_in_process_and_subprocess_give_the_same_answer(tmp_path: Path) -> None:
    args = ("--check", f"paths.root_dir={tmp_path}", *BAD)
    real = run_command("neo-train", *args, cwd=tmp_path, timeout=120)
    here = run_cli("neo-train", *args, cwd=tmp_path)
    assert real.returncode == here.returncode == 1, real.stdout + real.stderr
    assert " ".join(here.stderr.split()) == " ".join(real.stderr.split())
    assert "optim.lr=0 must be" in here.stderr and "did you mean optim.lr?" in here.stderr  # a user error: stderr
    assert "Traceback" not in here.stdout + here.stderr


def test_run_cli_restores_argv_cwd_environment_and_logging(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = (list(sys.argv), os.getcwd(), dict(os.environ), list(root.handlers), root.level)
    result = run_cli("neo-train", f"paths.root_dir={tmp_path}", "optim.lr=0", cwd=tmp_path, NEO_TEST_MARKER="1")
    assert result.returncode == 1 and "optim.lr=0" in result.stderr
    assert (list(sys.argv), os.getcwd(), dict(os.environ), list(root.handlers), root.level) == before
    ok = run_cli("neo-train", "--check", f"paths.root_dir={tmp_path}", cwd=tmp_path)  # --check does not stick ...
    assert ok.returncode == 0 and "configuration OK" in ok.stdout
    import neo.cli.train

    assert neo.cli.train._check_only is False  # ... to the next command, as with a new process


def test_an_uncaught_exception_is_a_traceback_and_exit_1(tmp_path: Path, monkeypatch) -> None:
    """As Python does for a script: so "Traceback" not in the output means what it means for a real process."""
    import neo.cli.data

    def broken(argv=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(neo.cli.data, "main", broken)
    result = run_cli("neo-data", "verify", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback") and "RuntimeError: boom" in result.stderr
