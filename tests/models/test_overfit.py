"""The tiny preset overfits 5 images: the total loss falls below 50% of its start within 60 steps."""

from __future__ import annotations

import torch
from rtdetr_testdata import make_shapes

from neo.models.rtdetr import build_preset


def test_tiny_overfits_five_images():
    torch.manual_seed(0)
    net, criterion, post = build_preset("tiny", num_classes=3)
    images, targets = make_shapes(5, 72, 128, seed=1)  # 16:9 and as small as the claim allows (loss ratio ~0.40)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    net.train()
    history = []
    for _ in range(60):
        loss = sum(criterion(net(images, targets), targets).values())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0], history[::10]
