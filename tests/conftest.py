"""Shared test settings: one torch thread (2 cores shared by the whole suite), small synthetic dataset, one tiny
trained run per session. Helpers live in tests/support/ (``run_cli`` and ``train_overrides`` re-exported here)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: 1 thread avoids OpenMP stalls

import torch  # noqa: E402

torch.set_num_threads(1)


import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.support import run_cli, train_overrides  # noqa: E402,F401 - re-exported: test files import them from here


@pytest.fixture(autouse=True)
def _no_log_handler_outlives_its_stream():
    """In-process CLI runs (Hydra, neo's console setup) attach log handlers to the streams pytest captures
    for that test; once those are closed, a later test's log record would print a "Logging error"
    traceback. Drop such handlers after every test (a real process runs one command and has no such case)."""
    yield
    loggers = [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values()
                                      if isinstance(item, logging.Logger))]
    for logger in loggers:
        for handler in list(logger.handlers):
            stream = getattr(handler, "stream", None)
            if stream is not None and getattr(stream, "closed", False):
                logger.removeHandler(handler)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic 16:9 COCO dataset (24 train / 8 val images at 320x180), made once per session."""
    from neo.data.synth import generate_synthetic_coco

    root = tmp_path_factory.mktemp("synth")
    generate_synthetic_coco(root, num_train=24, num_val=8, size="320x180", num_classes=3, seed=0)
    return root


@pytest.fixture(scope="session")
def trained_run(synth_root, tmp_path_factory: pytest.TempPathFactory):
    """The run folder of one tiny trained run (2 steps of model=tiny on ``synth_root``), trained once per session.

    Shared by every test that only needs "a trained checkpoint": read it, never change it (take
    ``trained_checkpoint`` for a copy of your own). The session fails if any of its files changed.
    """
    from tests.support.trained import digests, train_tiny_run

    run = train_tiny_run(synth_root, tmp_path_factory.mktemp("trained-run"))
    before = digests(run)
    yield run
    assert digests(run) == before, f"a test changed the shared trained run {run}: copy it (trained_checkpoint)"


@pytest.fixture(scope="session")
def tiny_checkpoint(trained_run):
    """last.ckpt of the shared trained run (read-only)."""
    return trained_run / "checkpoints/last.ckpt"


@pytest.fixture
def trained_checkpoint(tiny_checkpoint, tmp_path):
    """A copy of the shared trained run's last.ckpt in this test's folder, to change as the test likes."""
    import shutil

    target = tmp_path / "trained/last.ckpt"
    target.parent.mkdir()
    return Path(shutil.copy2(tiny_checkpoint, target))
