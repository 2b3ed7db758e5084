"""Hungarian matcher: optimal against brute force; empty targets."""

from __future__ import annotations

import itertools

import torch

from neo.models.rtdetr import HungarianMatcher


def _random_boxes(n: int) -> torch.Tensor:
    return torch.cat([torch.rand(n, 2) * 0.6 + 0.2, torch.rand(n, 2) * 0.3 + 0.05], dim=1)


def test_matches_brute_force_optimum():
    matcher = HungarianMatcher()
    for trial in range(10):
        torch.manual_seed(trial)
        q, c, n = 5, 4, int(torch.randint(1, 4, ()))
        outputs = {"pred_logits": torch.randn(1, q, c), "pred_boxes": _random_boxes(q)[None]}
        target = {"labels": torch.randint(0, c, (n,)), "boxes": _random_boxes(n)}
        ((rows, cols),) = matcher(outputs, [target])
        cost = matcher.cost_matrix(
            outputs["pred_logits"][0], outputs["pred_boxes"][0], target["labels"], target["boxes"]
        )
        best = min(
            sum(cost[p, j] for j, p in enumerate(perm)) for perm in itertools.permutations(range(q), n)
        )
        assert len(rows) == n and sorted(cols.tolist()) == list(range(n))
        assert torch.isclose(cost[rows, cols].sum(), torch.as_tensor(best), atol=1e-5)


def test_batched_equals_single_and_empty_targets():
    torch.manual_seed(0)
    matcher = HungarianMatcher()
    outputs = {
        "pred_logits": torch.randn(3, 6, 2),
        "pred_boxes": torch.stack([_random_boxes(6) for _ in range(3)]),
    }
    targets = [
        {"labels": torch.tensor([0, 1]), "boxes": _random_boxes(2)},
        {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)},
        {"labels": torch.tensor([1]), "boxes": _random_boxes(1)},
    ]
    batched = matcher(outputs, targets)
    assert [len(r) for r, _ in batched] == [2, 0, 1]
    for i in (0, 2):
        single = matcher({k: v[i : i + 1] for k, v in outputs.items()}, [targets[i]])[0]
        assert torch.equal(batched[i][0], single[0]) and torch.equal(batched[i][1], single[1])
    all_empty = matcher(outputs, [targets[1]] * 3)
    assert all(len(r) == 0 and len(c) == 0 and r.dtype == torch.int64 for r, c in all_empty)
