"""Contrastive denoising: group layout, attention mask, noise bounds, batches without boxes."""

from __future__ import annotations

import torch
from torch import nn

from neo.models.rtdetr.denoising import build_denoising_queries


def test_groups_mask_and_positive_indices():
    embed = nn.Embedding(4, 8, padding_idx=3)
    targets = [
        {"labels": torch.tensor([0, 1]), "boxes": torch.rand(2, 4) * 0.5 + 0.2},
        {"labels": torch.tensor([2]), "boxes": torch.rand(1, 4) * 0.5 + 0.2},
    ]
    query, ref, mask, meta = build_denoising_queries(targets, 3, 5, embed, num_denoising=10)
    groups, max_gt = 5, 2
    d = 2 * max_gt * groups
    assert meta["dn_num_group"] == groups and meta["dn_num_split"] == [d, 5]
    assert query.shape == (2, d, 8) and ref.shape == (2, d, 4) and mask.shape == (d + 5, d + 5)
    assert meta["dn_positive_idx"][0].tolist() == [g * 4 + j for g in range(groups) for j in (0, 1)]
    assert meta["dn_positive_idx"][1].tolist() == [g * 4 for g in range(groups)]
    assert mask[d:, :d].all() and not mask[d:, d:].any()  # matching queries never see dn queries
    assert not mask[:d, d:].any()  # dn queries see matching queries
    for g in range(groups):
        blk = slice(4 * g, 4 * g + 4)
        assert not mask[blk, blk].any()
        assert mask[blk, :d].sum() == 4 * (d - 4)  # and no other group


def test_noise_bounds_positive_inside_negative_outside():
    torch.manual_seed(0)
    embed = nn.Embedding(2, 8, padding_idx=1)
    box = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    targets = [{"labels": torch.tensor([0]), "boxes": box}]
    _, ref, _, meta = build_denoising_queries(targets, 1, 3, embed, num_denoising=200, label_noise_ratio=0.0)
    cxcywh = ref.sigmoid()[0]
    xyxy = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], -1)
    shift = (xyxy - torch.tensor([0.4, 0.4, 0.6, 0.6])).abs()  # corner moves in units of wh / 2 = 0.1
    assert shift[0::2].max() <= 0.1 + 1e-4  # positives: < 1 x (wh / 2)
    # negatives move every corner by [1, 2) x (wh / 2); those whose corners crossed collapse to zero size
    negatives = shift[1::2][(cxcywh[1::2, 2:] > 1e-3).all(-1)]
    assert len(negatives) > 50
    assert negatives.min() >= 0.1 - 1e-4 and negatives.max() <= 0.2 + 1e-4


def test_batch_without_boxes_gives_padding_queries():
    embed = nn.Embedding(4, 8, padding_idx=3)
    targets = [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}] * 2
    query, ref, mask, meta = build_denoising_queries(targets, 3, 5, embed, num_denoising=10)
    assert meta["dn_num_group"] == 10 and [len(p) for p in meta["dn_positive_idx"]] == [0, 0]
    assert torch.equal(query, embed.weight[3].expand_as(query))  # all padding class
    assert torch.isfinite(ref).all()
