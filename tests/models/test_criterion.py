"""SetCriterion: documented term set per preset, finite on empty batches, fp32 under autocast, DDP num_boxes."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rtdetr_testdata import empty_targets, make_shapes

from neo.models.rtdetr import SetCriterion, load_preset_config


def fake_outputs(
    num_layers: int, b: int = 2, q: int = 10, c: int = 3, dn: int = 4, dtype=torch.float32
) -> dict:
    """Outputs shaped like RTDETRDecoder's training outputs (dn groups of 2 gt: 1 group, 4 dn queries)."""

    def pred(n):
        return {
            "pred_logits": torch.randn(b, n, c, dtype=dtype, requires_grad=True),
            "pred_boxes": torch.rand(b, n, 4, dtype=dtype).mul(0.5).add(0.1).requires_grad_(),
        }

    out = pred(q)
    out["aux_outputs"] = [pred(q) for _ in range(num_layers - 1)]
    out["enc_outputs"] = pred(q)
    out["dn_outputs"] = [pred(dn) for _ in range(num_layers)]
    out["dn_meta"] = {
        "dn_positive_idx": [torch.tensor([0, 1]), torch.tensor([0])],
        "dn_num_group": 1,
        "dn_num_split": [dn, q],
    }
    return out


def _targets():
    return [
        {"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.6, 0.3, 0.2]])},
        {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.4, 0.1, 0.3]])},
    ]


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("tiny", 21),
        ("rtdetr_r18", 21),
        ("rtdetr_r34", 27),
        ("rtdetr_r50m", 39),
        ("rtdetr_r50", 39),
        ("rtdetr_r101", 39),
        ("hgnetv2_l", 39),
    ],
)
def test_term_set_per_preset(preset, expected):
    cfg = load_preset_config(preset, num_classes=3)
    n = cfg.net.decoder.num_layers
    criterion = SetCriterion(3)
    losses = criterion(fake_outputs(n), _targets())
    names = {
        f"loss_{t}{s}"
        for t in ("vfl", "bbox", "giou")
        for s in ["", "_enc"] + [f"_aux_{i}" for i in range(n - 1)] + [f"_dn_{i}" for i in range(n)]
    }
    assert set(losses) == names and len(losses) == expected == 3 * (2 * n + 1)
    assert all(v.dtype == torch.float32 and v.ndim == 0 and torch.isfinite(v) for v in losses.values())


def test_weights_and_perfect_prediction():
    criterion = SetCriterion(3)
    targets = _targets()
    out = fake_outputs(1, q=2, dn=2)
    boxes = torch.zeros(2, 2, 4)
    boxes[0] = targets[0]["boxes"]
    boxes[1, 0] = targets[1]["boxes"][0]
    boxes[1, 1] = torch.tensor([0.9, 0.9, 0.05, 0.05])
    out["pred_boxes"] = boxes
    losses = criterion(out, targets)
    assert losses["loss_bbox"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_giou"].item() == pytest.approx(0.0, abs=1e-6)
    criterion2 = SetCriterion(3, weight_vfl=2.0)
    torch.manual_seed(0)
    assert criterion2(out, targets)["loss_vfl"].item() == pytest.approx(
        2 * losses["loss_vfl"].item(), rel=1e-5
    )


def test_empty_batch_is_finite_and_keeps_every_term():
    criterion = SetCriterion(3)
    out = fake_outputs(3)
    out["dn_meta"]["dn_positive_idx"] = [torch.zeros(0, dtype=torch.int64)] * 2
    losses = criterion(out, empty_targets(2, 10, 10))
    assert len(losses) == 21 and all(torch.isfinite(v) for v in losses.values())
    total = sum(losses.values())
    total.backward()
    assert out["pred_logits"].grad is not None and torch.isfinite(out["pred_logits"].grad).all()
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_vfl"].item() > 0.0


def test_fp32_under_bf16_autocast(tiny):
    net, criterion, _ = tiny
    images, targets = make_shapes(1, 144, 256)
    net.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(images, targets)
        losses = criterion(out, targets)
    assert out["pred_logits"].dtype == torch.bfloat16
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


def _num_boxes_worker(rank: int, world: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        n_gt = [3, 0][rank]  # rank 1 has an empty batch
        targets = [{"labels": torch.zeros(n_gt, dtype=torch.int64)}]
        n = SetCriterion.num_boxes(targets, torch.device("cpu"))  # a 0-dim tensor on the device (no host sync)
        queue.put((rank, float(n)))
    finally:
        dist.destroy_process_group()


def test_num_boxes_is_all_reduced_across_ranks():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("fork")  # fork: the ranks need no fresh interpreter (spawn re-imports torch twice)
    queue = ctx.Queue()
    mp.start_processes(_num_boxes_worker, args=(2, port, queue), nprocs=2, join=True, start_method="fork")
    results = dict(queue.get(timeout=30) for _ in range(2))
    assert results == {0: 1.5, 1: 1.5}  # (3 + 0) / 2 on both ranks
