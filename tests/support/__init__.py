"""Helpers shared by the test suite (imported by test files; fixtures stay in the conftest.py files).

- :mod:`tests.support.overrides`: Hydra overrides and in-process config composition for short CPU runs.
- :mod:`tests.support.commands`: the one way to run a console script: in this process (:func:`run_cli`) or as a
  subprocess (:func:`run_command`, :func:`start_command`), both returning ``subprocess.CompletedProcess``.
- :mod:`tests.support.trained`: one tiny trained run per test session, copied for each test that needs one.
"""

from tests.support.commands import BIN, ENV, flat, output, run_cli, run_command, start_command, tail
from tests.support.overrides import TOY_MODEL, compose_train, train_overrides

__all__ = ["BIN", "ENV", "TOY_MODEL", "compose_train", "flat", "output", "run_cli", "run_command", "start_command", "tail",
           "train_overrides"]
