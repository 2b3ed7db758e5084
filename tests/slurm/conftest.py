"""The SLURM suite (``pytest -m slurm``, ``make test-slurm``): a real scheduler on this machine, started once.

The session fixture installs slurm-wlm + munge if missing (root, apt-get), starts munge, slurmctld and
slurmd with their config and state in a temporary folder, and stops them by PID at the end. Every test
here is marked ``slurm`` and left out of ``make test``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.slurm.cluster import Cluster, ClusterError, installed, start
from tests.slurm.helpers import stop_launched


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """A running single-node cluster (partition ``debug``, 2 CPUs); ``slurm.env`` for every SLURM command."""
    if not installed() and (os.geteuid() != 0 or shutil.which("apt-get") is None):
        pytest.skip("slurm-wlm is not installed and this user cannot install it (the CI machine runs as root)")
    folder = tmp_path_factory.mktemp("slurm")
    try:
        cluster = start(folder)
    except ClusterError as exc:
        pytest.fail(f"the SLURM cluster did not start: {exc}")
    yield cluster
    stop_launched()
    cluster.stop()


@pytest.fixture(autouse=True)
def _no_leftover_launchers(request: pytest.FixtureRequest):
    """After each test: a neo-train the test left waiting is stopped and the cluster's jobs cancelled."""
    yield
    stop_launched()
    if "slurm" in request.fixturenames:
        request.getfixturevalue("slurm").cancel_all_jobs()


@pytest.fixture(scope="session")
def long_epoch_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic 16:9 COCO dataset with one long epoch (160 train images at 320x180, 2 val images).

    Long enough that the scheduler's signal (sent up to 30 s after it is due) lands inside the epoch
    even on a fast machine.
    """
    from neo.data.synth import generate_synthetic_coco

    root = tmp_path_factory.mktemp("long_epoch")
    generate_synthetic_coco(root, num_train=160, num_val=2, size="320x180", num_classes=3, seed=1)
    return root
