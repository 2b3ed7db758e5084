"""The GPU suite (marker ``gpu``, ``make test-gpu``): skipped with its reason where CUDA is not available.

``make test`` leaves it out (``-m 'not slurm and not gpu'``); on a machine with a GPU ``make test-gpu``
runs it in a few minutes and prints the figures (images/s, synchronisations per step).
"""

from __future__ import annotations

import pytest
import torch

REASON = "needs a CUDA GPU (torch.cuda.is_available() is False here); run `make test-gpu` on a machine with one"


# every test module here starts with: pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason=REASON)]
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="session")
def synth_1080p(tmp_path_factory: pytest.TempPathFactory):
    from neo.data.synth import generate_synthetic_coco

    from .commands import SYNTH_1080P

    root = tmp_path_factory.mktemp("synth1080p")
    generate_synthetic_coco(root, seed=0, **SYNTH_1080P)
    return root


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory: pytest.TempPathFactory):
    from neo.data.synth import generate_synthetic_coco

    from .commands import SMALL_SYNTH

    root = tmp_path_factory.mktemp("synth360p")
    generate_synthetic_coco(root, seed=0, **SMALL_SYNTH)
    return root
