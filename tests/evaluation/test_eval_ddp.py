"""CocoEvaluator across 2 real gloo ranks with DistributedSampler padding equals the single-process result."""

from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from coco_case import EXPECTED_SEEN, LABEL_TO_CATEGORY_ID, predictions, write_annotations
from torch.utils.data import DistributedSampler

from neo.evaluation.coco import CocoEvaluator

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, annotation_file: str, queue) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        image_ids = [1, 2, 3]  # 3 images on 2 ranks: the sampler pads rank 1 with image 1 again
        shard = [image_ids[i] for i in DistributedSampler(image_ids, WORLD, rank, shuffle=False)]
        evaluator = CocoEvaluator(annotation_file, LABEL_TO_CATEGORY_ID, per_class=True)
        preds = predictions()
        evaluator.update([preds[i] for i in shard], shard)
        queue.put((rank, shard, evaluator.compute(), len(evaluator.detections())))
    finally:
        dist.destroy_process_group()


def test_two_ranks_gather_and_dedupe(tmp_path):
    annotation_file = str(write_annotations(tmp_path))
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_rank, args=(_free_port(), annotation_file, queue), nprocs=WORLD, join=True)
    results = sorted(queue.get() for _ in range(WORLD))
    assert [shard for _, shard, _, _ in results] == [[1, 3], [2, 1]]
    for _, _, metrics, num_detections in results:  # every rank computes the same, full metrics
        assert num_detections == 6  # image 1's 4 detections counted once
        for name, expected in EXPECTED_SEEN.items():
            assert abs(metrics[name] - expected) < 1e-9, name
