"""D-FINE's model step waits for the device as RT-DETR's does: once, for the matcher's cost matrices. The GO
matching reads the matcher's output in one `tolist`: host tensors (made from scipy's answer), free on a GPU,
which the CPU counter cannot tell from device tensors, so it is listed; the DDF balance and the FGL targets
come from host counts and device tensors."""

from __future__ import annotations

import torch
from host_syncs import HostSyncCounter
from rtdetr_testdata import make_shapes

from neo.models.rtdetr import build_preset


def test_dfine_model_step_waits_for_the_device_once() -> None:
    torch.manual_seed(0)
    net, criterion, _ = build_preset("dfine_n", num_classes=3, overrides={"net.decoder.num_denoising": 30})
    images, targets = make_shapes(3, 72, 128, seed=1, max_objects=4)
    targets[1] = {**targets[1], "labels": targets[1]["labels"][:0], "boxes": targets[1]["boxes"][:0]}
    net.train()
    with HostSyncCounter() as counter:
        losses = criterion(net(images, targets), targets)
        torch.stack(list(losses.values())).sum().backward()
    assert "loss_ddf_aux_0" in losses and "loss_fgl_dn_0" in losses
    assert counter.count == 2, counter.report()
    (copy, copy_site), (read, read_site) = counter.calls
    assert copy == "cpu" and copy_site.startswith("matcher.py:"), counter.report()
    assert read == "tolist" and read_site.startswith("criterion.py:"), counter.report()
