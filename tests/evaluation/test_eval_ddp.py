"""CocoEvaluator across 2 real gloo ranks with DistributedSampler padding: the metrics equal the
single-process result, are computed once (on rank 0) and reach every rank; only rank 0 reads the JSON."""

from __future__ import annotations

import socket

import pytest
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
        preds = predictions()
        # As in training: the valid ids come from the dataset, so the JSON is parsed only where needed.
        evaluator = CocoEvaluator(annotation_file, LABEL_TO_CATEGORY_ID, per_class=True, known_image_ids=[1, 2, 3, 4])
        evaluator.update([preds[i] for i in shard], shard)
        first = evaluator.compute()
        second = evaluator.compute()  # the same validation logged twice: the same numbers
        runs, parsed = evaluator.evaluations_run, evaluator.ground_truth_loaded
        # A full evaluation (neo-eval style): detections gathered everywhere, then metrics once more.
        full = CocoEvaluator(annotation_file, LABEL_TO_CATEGORY_ID, per_class=True, images="all")
        full.update([preds[i] for i in shard], shard)
        num_detections = len(full.detections())
        queue.put((rank, shard, first, second, runs, parsed, full.compute(), full.evaluations_run, num_detections))
    finally:
        dist.destroy_process_group()


def _single_process(annotation_file: str, images: str) -> dict[str, float]:
    evaluator = CocoEvaluator(annotation_file, LABEL_TO_CATEGORY_ID, per_class=True, images=images)
    preds = predictions()
    evaluator.update([preds[i] for i in (1, 2, 3)], [1, 2, 3])
    return evaluator.compute()


def test_two_ranks_compute_once_and_equal_single_process(tmp_path):
    annotation_file = str(write_annotations(tmp_path))
    # fork: real processes and a real gloo group, without re-importing torch in each rank as spawn does
    queue = mp.get_context("fork").SimpleQueue()
    mp.start_processes(_rank, args=(_free_port(), annotation_file, queue), nprocs=WORLD, join=True, start_method="fork")
    results = sorted(queue.get() for _ in range(WORLD))
    assert [r[1] for r in results] == [[1, 3], [2, 1]]
    seen, everything = _single_process(annotation_file, "seen"), _single_process(annotation_file, "all")
    for name, expected in EXPECTED_SEEN.items():
        assert seen[name] == pytest.approx(expected, abs=1e-9), name
    for rank, _, first, second, runs, parsed, full, full_runs, num_detections in results:
        assert first == second == seen  # bit-identical on every rank, broadcast from rank 0
        assert full == everything and full != seen  # images="all" counts image 4 as missed
        assert num_detections == 6  # image 1's 4 detections counted once, on every rank
        assert runs == (2 if rank == 0 else 0) and full_runs == (1 if rank == 0 else 0)  # COCOeval on rank 0 only
        assert parsed == (rank == 0)  # the other rank never parsed the annotation file
