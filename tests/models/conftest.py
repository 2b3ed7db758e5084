"""Model test fixtures: few threads, the tiny preset."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    # one thread: on a shared 2-core machine, 2 OpenMP threads competing with other jobs run up to 10x
    # slower than one (measured on small convolutions while the rest of the suite ran)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def tiny():
    """(net, criterion, postprocessor) of the tiny preset with 3 classes."""
    from neo.models.rtdetr import build_preset

    torch.manual_seed(0)
    return build_preset("tiny", num_classes=3)
