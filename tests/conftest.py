"""Shared test settings: one torch thread (2 cores shared by the whole suite), small synthetic dataset."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: 1 thread avoids OpenMP stalls

import torch  # noqa: E402

torch.set_num_threads(1)


import logging  # noqa: E402

import pytest  # noqa: E402


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


def train_overrides(root, out, *extra: str) -> list[str]:
    """Hydra overrides for a short CPU run on `root` (from `synth_root`) writing under `out`."""
    return [
        f"paths.root_dir={out}",
        f"data.root={root}",
        "data.synthetic=null",
        "data.num_classes=3",
        "data.resolution=320x180",
        "data.train_scales=[1.0]",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "data.no_aug_epochs=0",
        "trainer=cpu",
        "trainer.precision=32-true",  # the suite's numbers do not depend on the CPU kind (auto: bf16 on AVX512-BF16)
        "channels_last=false",
        "trainer.num_sanity_val_steps=0",
        "print_config=false",
        "torch_threads=1",
        "callbacks.progress=null",
        *extra,
    ]
