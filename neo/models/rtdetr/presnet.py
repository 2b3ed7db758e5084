"""PResNet: the ResNet-vd backbone of the official RT-DETR (same module names, so its weights load).

Stem of three 3x3 convs (stride 2 on the first) + 3x3/2 max-pool; BasicBlock (R18/R34) or
BottleNeck (R50/R101) stages; variant "d" stride-2 shortcuts are AvgPool2d(2, ceil_mode) + 1x1 conv,
and the first block of every stage has a projection shortcut (also at 64 -> 64 in R18/R34).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from .layers import ConvNormLayer, get_activation

# The one table of the R-family layouts: depth -> blocks per stage; BottleNeck blocks from depth 50 up.
STAGE_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
BOTTLENECK_FROM_DEPTH = 50


def depth_of_layout(stage3_blocks: int, bottleneck: bool) -> int | None:
    """The depth whose third stage (stride 16) has ``stage3_blocks`` blocks of that kind, or None (e.g. 6
    BasicBlocks: R34, 6 BottleNecks: R50). Reads the depth of a state dict's backbone."""
    for depth, blocks in STAGE_BLOCKS.items():
        if blocks[2] == stage3_blocks and (depth >= BOTTLENECK_FROM_DEPTH) == bottleneck:
            return depth
    return None


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Projection shortcut; stride 2 uses avg-pool then a 1x1 conv (variant d)."""
    if stride == 2:
        return nn.Sequential(
            OrderedDict(
                pool=nn.AvgPool2d(2, 2, 0, ceil_mode=True),
                conv=ConvNormLayer(in_channels, out_channels, 1, 1),
            )
        )
    return ConvNormLayer(in_channels, out_channels, 1, stride)


class BasicBlock(nn.Module):
    """Two 3x3 convs + shortcut. x: [B, C_in, H, W] -> [B, C_out, H / stride, W / stride]."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: bool, act: str) -> None:
        super().__init__()
        self.shortcut = shortcut
        if not shortcut:
            self.short = _shortcut(in_channels, channels, stride)
        self.branch2a = ConvNormLayer(in_channels, channels, 3, stride, act=act)
        self.branch2b = ConvNormLayer(channels, channels, 3, 1)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch2b(self.branch2a(x))
        return self.act(out + (x if self.shortcut else self.short(x)))


class BottleNeck(nn.Module):
    """1x1 -> 3x3 (stride here, variant d) -> 1x1 (x4) + shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: bool, act: str) -> None:
        super().__init__()
        self.shortcut = shortcut
        out_channels = channels * self.expansion
        if not shortcut:
            self.short = _shortcut(in_channels, out_channels, stride)
        self.branch2a = ConvNormLayer(in_channels, channels, 1, 1, act=act)
        self.branch2b = ConvNormLayer(channels, channels, 3, stride, act=act)
        self.branch2c = ConvNormLayer(channels, out_channels, 1, 1)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch2c(self.branch2b(self.branch2a(x)))
        return self.act(out + (x if self.shortcut else self.short(x)))


class Blocks(nn.Module):
    """One stage: `count` blocks; the first one strides (except stage 2) and projects."""

    def __init__(
        self, block: type, in_channels: int, channels: int, count: int, stage_num: int, act: str
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for i in range(count):
            stride = 2 if i == 0 and stage_num != 2 else 1
            self.blocks.append(block(in_channels, channels, stride, shortcut=i != 0, act=act))
            in_channels = channels * block.expansion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d below `module` by a FrozenBatchNorm2d holding the same statistics."""
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(frozen, name).copy_(getattr(module, name).detach())
        return frozen
    for name, child in module.named_children():
        new = freeze_batch_norm(child)
        if new is not child:
            setattr(module, name, new)
    return module


class PResNet(nn.Module):
    """ResNet-vd backbone returning the stride-8/16/32 maps (by default).

    Args:
        depth: 18, 34, 50 or 101.
        freeze_at: -1 trains everything; 0 freezes the stem; k > 0 also freezes the first k stages.
        freeze_norm: replace BatchNorm by FrozenBatchNorm2d (official R50/R101 presets).
        fold_frozen_norm: fold the frozen norms into the convs at run time (faster, float rounding apart);
            False keeps conv -> norm as upstream computes it (exact reproduction of official outputs).
        return_idx: stages to return (0 = stride 4 ... 3 = stride 32).
        base_channels: 64 officially; smaller values give narrow CPU-sized variants.
        pretrained: backbone weights as a state dict (official names, optional "backbone." prefix) or None.
            A file is read by :func:`neo.checkpoints.pretrained.build_net` (``model.net.backbone.pretrained``),
            which hands its state dict to :meth:`load_pretrained_state`; this module reads no files.

    forward: images [B, 3, H, W] -> list of [B, out_channels[i], ceil(H / s_i), ceil(W / s_i)].
    """

    def __init__(
        self,
        depth: int = 50,
        freeze_at: int = -1,
        freeze_norm: bool = False,
        return_idx: tuple[int, ...] | list[int] = (1, 2, 3),
        base_channels: int = 64,
        act: str = "relu",
        pretrained: Mapping[str, torch.Tensor] | None = None,
        fold_frozen_norm: bool = True,
    ) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"PResNet depth={depth} is not supported; use one of {sorted(STAGE_BLOCKS)}")
        c = base_channels
        self.conv1 = nn.Sequential(
            OrderedDict(
                conv1_1=ConvNormLayer(3, c // 2, 3, 2, act=act),
                conv1_2=ConvNormLayer(c // 2, c // 2, 3, 1, act=act),
                conv1_3=ConvNormLayer(c // 2, c, 3, 1, act=act),
            )
        )
        block = BottleNeck if depth >= BOTTLENECK_FROM_DEPTH else BasicBlock
        widths = [c, 2 * c, 4 * c, 8 * c]
        self.res_layers = nn.ModuleList()
        in_channels = c
        for i, (width, count) in enumerate(zip(widths, STAGE_BLOCKS[depth], strict=True)):
            self.res_layers.append(Blocks(block, in_channels, width, count, i + 2, act))
            in_channels = width * block.expansion
        self.return_idx = list(return_idx)
        self.out_channels = [widths[i] * block.expansion for i in self.return_idx]
        self.out_strides = [[4, 8, 16, 32][i] for i in self.return_idx]
        if pretrained is not None:
            self.load_pretrained_state(pretrained)
        if freeze_at >= 0:
            self._freeze([self.conv1, *self.res_layers[: min(freeze_at, len(self.res_layers))]])
        if freeze_norm:
            freeze_batch_norm(self)
        self.set_fold_frozen_norm(fold_frozen_norm)

    def set_fold_frozen_norm(self, fold: bool) -> None:
        """Fold (True) or keep unfolded (False) every frozen norm of this backbone from the next forward on."""
        for module in self.modules():
            if isinstance(module, ConvNormLayer):
                module.fold_frozen_norm = bool(fold)

    @staticmethod
    def _freeze(modules: list[nn.Module]) -> None:
        for module in modules:
            for p in module.parameters():
                p.requires_grad_(False)

    def load_pretrained_state(self, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
        """Load backbone weights: official PResNet-vd names, optionally prefixed ``backbone.`` (a whole detector's
        keys); the classifier (``fc.``/``head.``) and any other ``backbone``-less detector keys are ignored.

        source: where the weights came from (a file name), for the error on a mismatch.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"PResNet weights from {source} must be a state dict (name -> tensor), not "
                            f"{type(state).__name__}; a file is read by neo.checkpoints.pretrained.build_net")
        state = {k.removeprefix("backbone."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith(("fc.", "head."))}
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(
                f"backbone weights {source} do not match PResNet: missing {missing[:5]}, unexpected "
                f"{unexpected[:5]} (of {len(missing)}/{len(unexpected)}); pass a PResNet-vd state dict "
                "with the official key names"
            )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = nn.functional.max_pool2d(self.conv1(x), kernel_size=3, stride=2, padding=1)
        outs = []
        for i, stage in enumerate(self.res_layers):
            x = stage(x)
            if i in self.return_idx:
                outs.append(x)
        return outs
