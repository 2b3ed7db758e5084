"""Collate detection samples into the contract batch: uint8 images [B, 3, H, W] + list of target dicts."""

from __future__ import annotations

import torch


def collate_detection(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """Stack B images (all one 16:9 size, uint8 [3, H, W]) -> [B, 3, H, W]; targets stay a list.

    Raises ValueError when images differ in size (the batch sampler must give one size per batch).
    """
    images = [item[0] for item in batch]
    shapes = {tuple(img.shape) for img in images}
    if len(shapes) != 1:
        raise ValueError(f"a batch mixes image sizes {sorted(shapes)}; use MultiScaleBatchSampler, "
                         f"which gives one (H, W) to every item of a batch.")
    return torch.stack(images), [item[1] for item in batch]
