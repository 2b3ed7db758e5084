"""dfine_n overfits 5 images: the total loss falls below 0.575 of its start within 60 steps (the RT-DETR
overfit test's 0.5, with 15% slack: D-FINE's FGL term is weighted by the IoU and so grows as boxes improve)."""

from __future__ import annotations

import torch
from rtdetr_testdata import make_shapes

from neo.models.rtdetr import build_preset

RTDETR_FLOOR = 0.5  # tests/models/test_overfit.py


def test_dfine_n_overfits_five_images():
    torch.manual_seed(0)
    # 30 denoising queries instead of 100: at most 3 objects per image, so 5 groups instead of 33 (speed only)
    net, criterion, _ = build_preset("dfine_n", num_classes=3, overrides={"net.decoder.num_denoising": 30})
    images, targets = make_shapes(5, 72, 128, seed=1)  # the RT-DETR test's images
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=2e-3, weight_decay=1e-4)
    net.train()
    history = []
    for _ in range(60):
        losses = criterion(net(images, targets), targets)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
        optimizer.step()
        history.append(loss.item())
    assert {"loss_fgl", "loss_ddf_aux_0"} <= set(losses)
    assert history[-1] < 1.15 * RTDETR_FLOOR * history[0], history[::10]
