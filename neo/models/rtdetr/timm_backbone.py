"""Any timm `features_only` model as an RT-DETR backbone (channels and strides read from timm)."""

from __future__ import annotations

import timm
import torch
from torch import nn

from .presnet import freeze_batch_norm


class TimmBackbone(nn.Module):
    """Wrap `timm.create_model(name, features_only=True)` and return its stride-8/16/32 maps.

    Args:
        name: a timm model name, e.g. "hgnetv2_b4", "convnext_tiny", "resnet50d".
        pretrained: local weights file (loaded through timm's `pretrained_cfg_overlay=dict(file=...)`)
            or None for random initialisation.
        out_strides: feature strides to return.
        freeze_norm: replace BatchNorm2d by FrozenBatchNorm2d.
        freeze_stem: do not train the stem (the model's `stem` module; an error if it has none).

    forward: images [B, 3, H, W] -> list of [B, out_channels[i], ~H / s_i, ~W / s_i].
    """

    def __init__(
        self,
        name: str,
        pretrained: str | None = None,
        out_strides: tuple[int, ...] | list[int] = (8, 16, 32),
        freeze_norm: bool = False,
        freeze_stem: bool = False,
    ) -> None:
        super().__init__()
        if name not in timm.list_models():
            raise ValueError(
                f"timm has no model {name!r}; list candidates with timm.list_models('{name[:6]}*')"
            )
        kwargs = {"pretrained_cfg_overlay": {"file": str(pretrained)}} if pretrained else {}
        probe = timm.create_model(name, pretrained=False, features_only=True)
        reductions = probe.feature_info.reduction()
        missing = [s for s in out_strides if s not in reductions]
        if missing:
            raise ValueError(f"timm model {name!r} has feature strides {reductions}, not {missing}")
        out_indices = tuple(reductions.index(s) for s in out_strides)
        if pretrained:
            self.model = timm.create_model(
                name, pretrained=True, features_only=True, out_indices=out_indices, **kwargs
            )
        else:
            del probe
            self.model = timm.create_model(
                name, pretrained=False, features_only=True, out_indices=out_indices
            )
        self.out_channels = list(self.model.feature_info.channels())
        self.out_strides = list(out_strides)
        if freeze_norm:
            freeze_batch_norm(self)
        if freeze_stem:
            if not hasattr(self.model, "stem"):
                raise ValueError(f"timm model {name!r} has no `stem` module to freeze")
            self.model.stem.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(x))
