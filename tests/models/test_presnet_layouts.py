"""The one R-family layout table: a built PResNet's blocks read back as its depth (what checkpoint detection uses)."""

from __future__ import annotations

import pytest
import torch

from neo.models.rtdetr.presnet import STAGE_BLOCKS, BottleNeck, PResNet, depth_of_layout


@pytest.mark.parametrize("depth", sorted(STAGE_BLOCKS))
def test_a_built_backbone_reads_back_as_its_depth(depth):
    with torch.device("meta"):
        net = PResNet(depth=depth)
    assert [len(stage.blocks) for stage in net.res_layers] == STAGE_BLOCKS[depth]
    stage3 = net.res_layers[2].blocks
    assert depth_of_layout(len(stage3), isinstance(stage3[0], BottleNeck)) == depth


@pytest.mark.parametrize("stage3_blocks, bottleneck", [(2, True), (23, False), (4, False), (0, False)])
def test_a_layout_of_no_official_depth_reads_none(stage3_blocks, bottleneck):
    assert depth_of_layout(stage3_blocks, bottleneck) is None
