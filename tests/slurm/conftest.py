"""The SLURM suite (``pytest -m slurm``, ``make test-slurm``): a real scheduler on this machine, started once.

The session fixture installs slurm-wlm + munge if missing (root, apt-get), starts munge, slurmctld and
slurmd with their config and state in a temporary folder, and stops them by PID at the end. Every test
here is marked ``slurm`` and left out of ``make test``.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.slurm.cluster import Cluster, ClusterError, installed, start


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/slurm/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.slurm)


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
    cluster.stop()
