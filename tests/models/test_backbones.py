"""Backbones: PResNet strides/channels at odd sizes and weight loading; timm features_only by name."""

from __future__ import annotations

import pytest
import torch

from neo.models.rtdetr import PResNet, TimmBackbone


def test_presnet_shapes_at_1080p_width():
    net = PResNet(depth=18, base_channels=16).eval()
    with torch.no_grad():
        feats = net(torch.zeros(1, 3, 270, 480))
    assert net.out_channels == [32, 64, 128] and net.out_strides == [8, 16, 32]
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 34, 60), (64, 17, 30), (128, 9, 15)]


def test_presnet_loads_official_style_weights():
    """Weights come as a state dict (files are read by neo.checkpoints.pretrained.build_net)."""
    torch.manual_seed(0)
    source = PResNet(depth=18, base_channels=16)
    detector_keys = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    loaded = PResNet(depth=18, base_channels=16, pretrained=detector_keys)
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="do not match PResNet"):
        PResNet(depth=34, base_channels=16, pretrained=detector_keys)
    with pytest.raises(TypeError, match="must be a state dict.*build_net"):
        PResNet(depth=18, base_channels=16, pretrained="backbone.pth")


def test_timm_backbone_channels_and_local_weights(tmp_path):
    import timm

    torch.manual_seed(0)
    full = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "resnet10t.pth"
    torch.save(full.state_dict(), path)
    backbone = TimmBackbone("resnet10t", pretrained=str(path))
    assert backbone.out_channels == [128, 256, 512] and backbone.out_strides == [8, 16, 32]
    assert torch.equal(backbone.model.conv1[0].weight, full.conv1[0].weight)
    with torch.no_grad():
        feats = backbone(torch.zeros(1, 3, 180, 320))
    assert [f.shape[1] for f in feats] == [128, 256, 512]
    with pytest.raises(ValueError, match="timm has no model"):
        TimmBackbone("resnet_does_not_exist")


def test_frozen_norm_folding_equals_conv_then_norm():
    torch.manual_seed(0)
    net = PResNet(depth=50, base_channels=16, freeze_norm=True, freeze_at=0)
    for m in net.modules():
        if hasattr(m, "running_var"):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_()
            m.weight.normal_()
    layer = net.res_layers[1].blocks[0].branch2b
    x = torch.randn(2, layer.conv.in_channels, 9, 13)
    reference = layer.act(layer.norm(layer.conv(x)))
    assert torch.allclose(layer(x), reference, atol=1e-5)
