"""RTDETRModule reads the loss once per step: the value for the progress bar and the non-finite decision
every rank shares (under DDP the ranks agree on the device before the one copy to the host)."""

from __future__ import annotations

import math
import os
import socket
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from neo.training.module import RTDETRModule


def _one_process(world_size: int = 1) -> SimpleNamespace:
    return SimpleNamespace(trainer=SimpleNamespace(world_size=world_size))


def test_single_process_reads_value_and_finiteness_together() -> None:
    host, finite = RTDETRModule._read_loss(_one_process(), torch.tensor(2.5, requires_grad=True) * 2)
    assert host.device.type == "cpu" and not host.requires_grad and float(host) == 5.0 and finite is True
    host, finite = RTDETRModule._read_loss(_one_process(), torch.tensor(float("nan")))
    assert math.isnan(float(host)) and finite is False


def _worker(rank: int, world: int, port: int, losses: list[float], queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        host, finite = RTDETRModule._read_loss(_one_process(world), torch.tensor(losses[rank]))
        queue.put((rank, float(host), finite))
    finally:
        dist.destroy_process_group()


def _ranks(losses: list[float]) -> dict[int, tuple[float, bool]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").Queue()
    mp.start_processes(_worker, args=(len(losses), port, losses, queue), nprocs=len(losses), join=True,
                       start_method="spawn")
    return {rank: (value, finite) for rank, value, finite in (queue.get(timeout=60) for _ in losses)}


def test_ranks_stop_together_when_one_rank_is_not_finite() -> None:
    results = _ranks([1.5, float("inf")])
    assert results[0] == (1.5, False) and results[1][1] is False  # rank 0 is finite, yet stops with rank 1
    assert _ranks([1.5, 2.0]) == {0: (1.5, True), 1: (2.0, True)}
