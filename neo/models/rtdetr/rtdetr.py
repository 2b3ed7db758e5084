"""RTDETR: input normalisation + backbone + hybrid encoder + decoder (official module names)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .repvgg import RepVggBlock


class RTDETR(nn.Module):
    """The detector.

    Args:
        backbone: module returning a list of feature maps and exposing `out_channels`.
        encoder: a HybridEncoder, or a factory `encoder(in_channels=...)` (Hydra `_partial_: true`),
            called with the backbone's `out_channels`.
        decoder: an RTDETRDecoder, or a factory `decoder(num_classes=..., feat_channels=...)`.
        num_classes: classes C (only used when `decoder` is a factory).
        pixel_mean, pixel_std: per-channel statistics on the 0..1 scale, or None (official: /255 only).

    forward(images, targets=None):
        images: uint8 [B, 3, H, W] (0..255) or float [B, 3, H, W] (0..1), any H, W.
        targets: list of B dicts ("labels" int64 [N], "boxes" float [N, 4] normalised cxcywh); needed
            in training for denoising.
        returns dict: "pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4] sigmoid cxcywh normalised to the
            input (canvas) size, "image_size" int64 [2] (H, W) of the input (a host tensor); in training also
            "aux_outputs", "enc_outputs", "dn_outputs", "dn_meta" (see RTDETRDecoder).
    """

    def __init__(
        self,
        backbone: nn.Module,
        encoder: nn.Module | Callable[..., nn.Module],
        decoder: nn.Module | Callable[..., nn.Module],
        num_classes: int | None = None,
        pixel_mean: Sequence[float] | None = None,
        pixel_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        channels = list(backbone.out_channels)
        if not isinstance(encoder, nn.Module):
            encoder = encoder(in_channels=channels)
        elif list(encoder.in_channels) != channels:
            raise ValueError(
                f"encoder in_channels {list(encoder.in_channels)} differ from the backbone's {channels}; "
                "set model.net.encoder.in_channels to the backbone's channels (or leave it out with _partial_)"
            )
        self.encoder = encoder
        if not isinstance(decoder, nn.Module):
            if num_classes is None:
                raise ValueError("RTDETR needs num_classes when the decoder is given as a factory")
            decoder = decoder(num_classes=num_classes, feat_channels=list(encoder.out_channels))
        self.decoder = decoder
        self.num_classes = decoder.num_classes
        scale = torch.full((1, 3, 1, 1), 1.0 / 255.0)
        shift = torch.zeros(1, 3, 1, 1)
        if (pixel_mean is None) != (pixel_std is None):
            raise ValueError("give both pixel_mean and pixel_std, or neither")
        if pixel_mean is not None:
            mean = torch.tensor(pixel_mean, dtype=torch.float32).reshape(1, 3, 1, 1)
            std = torch.tensor(pixel_std, dtype=torch.float32).reshape(1, 3, 1, 1)
            scale, shift = scale / std, -mean / std
        # normalised = images * pixel_scale + pixel_shift (== (images / 255 - mean) / std)
        self.register_buffer("pixel_scale", scale, persistent=False)
        self.register_buffer("pixel_shift", shift, persistent=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (0..255) or float (0..1) [B, 3, H, W] -> float32 normalised, same memory format."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        scale = self.pixel_scale if images.dtype == torch.uint8 else self.pixel_scale * 255.0
        return images.to(scale.dtype) * scale + self.pixel_shift

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None) -> dict:
        x = self.normalize(images)
        feats = self.encoder(self.backbone(x))
        out = self.decoder(feats, targets)
        h, w = images.shape[-2:]  # ints, or 0-d tensors while tracing for export: a list takes both
        out["image_size"] = torch.tensor([h, w], dtype=torch.int64)  # on the host: read without a sync
        return out

    def deploy(self) -> RTDETR:
        """Fuse RepVGG blocks for inference (eval outputs unchanged); returns self in eval mode."""
        self.eval()
        for m in self.modules():
            if isinstance(m, RepVggBlock):
                m.deploy()
        return self
