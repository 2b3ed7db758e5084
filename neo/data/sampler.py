"""Batch sampler that gives every batch one 16:9 size and switches heavy augmentation per epoch.

It yields lists of (index, (H, W), heavy, seed) tuples (with `dense_epochs`: (index, (H, W), heavy, seed,
dense)) that `CocoDetection` understands, so the
decision lives in the main process and reaches DataLoader workers (even persistent ones) with
the indices. Lightning calls `set_epoch(epoch)` on `batch_sampler.sampler` at every epoch start
(an `EpochShuffleSampler`, or the DistributedSampler it swaps in under DDP); the batch sampler reads
the epoch from there, so a Lightning training loop needs no extra call.

Every draw (order, sizes, per-sample augmentation seeds) is a function of (seed, epoch, batch number),
so a position is just (epoch, batches done): `resume_at` makes the next iteration of that epoch start
at that batch, with the same images, sizes and seeds an uninterrupted epoch would have given it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler

from neo.data.sizes import check_sizes


class EpochShuffleSampler(Sampler[int]):
    """Shuffled indices 0..n-1, reseeded by (seed, epoch) via `set_epoch` (torch's RandomSampler has none)."""

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True):
        self.length, self.seed, self.shuffle, self.epoch = length, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.length))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=g).tolist())


class MultiScaleBatchSampler(BatchSampler):
    """Batches of `batch_size` indices from `sampler`; one size per batch drawn from `sizes`.

    For the last `no_aug_epochs` of `max_epochs` (and whenever `max_epochs` is unknown and
    `set_heavy(False)` was called) batches use `final_size` and heavy augmentation is off.
    `dense_epochs` (start, stop): the epochs whose samples are marked dense (mosaic / mixup,
    neo.data.dense), stop excluded, and only while heavy augmentation is on; stop None: no end, a float in
    (0, 1): that fraction of `max_epochs` (rounded up; no end while `max_epochs` is unknown); None: no dense field.
    Sizes are drawn from a generator seeded by (seed, epoch): identical on every DDP rank.
    """

    def __init__(
        self,
        sampler: Sampler[int] | Sequence[int],
        batch_size: int,
        drop_last: bool,
        sizes: Sequence[object] = ((360, 640),),
        final_size: object | None = None,
        no_aug_epochs: int = 0,
        max_epochs: int | None = None,
        seed: int = 0,
        dense_epochs: Sequence[int | None] | None = None,
    ):
        super().__init__(sampler, batch_size, drop_last)
        self.sizes = check_sizes(sizes, key="data.train_sizes")
        self.final_size = check_sizes([final_size], key="data.eval_size")[0] if final_size is not None else self.sizes[len(self.sizes) // 2]
        self.no_aug_epochs, self.max_epochs, self.seed = no_aug_epochs, max_epochs, seed
        self.dense_epochs = None if dense_epochs is None else (int(dense_epochs[0]), dense_epochs[1])
        self._epoch = 0
        self._heavy_override: bool | None = None
        self._resume: tuple[int, int] | None = None  # (epoch, batches to skip) for the next iteration
        self.batches_drawn = 0  # batches yielded by the current iteration (this process's count)

    @property
    def epoch(self) -> int:
        """The inner sampler's epoch when it tracks one (Lightning sets it), else our own."""
        return int(getattr(self.sampler, "epoch", self._epoch))

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch here and on the inner sampler (for loops other than Lightning's)."""
        self._epoch = epoch
        if callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(epoch)

    def set_heavy(self, heavy: bool | None) -> None:
        """Force heavy augmentation + multi-scale on/off (None: decide from epoch and max_epochs)."""
        self._heavy_override = heavy

    @property
    def heavy(self) -> bool:
        """True while zoom-out / IoU crop / photometric and multi-scale are active."""
        if self._heavy_override is not None:
            return self._heavy_override
        if self.no_aug_epochs <= 0 or self.max_epochs is None:
            return True
        return self.epoch < self.max_epochs - self.no_aug_epochs

    @property
    def dense(self) -> bool:
        """True while the samples of this epoch are marked dense (inside `dense_epochs`, heavy augmentation on)."""
        if self.dense_epochs is None or not self.heavy:
            return False
        start, stop = self.dense_epochs
        if isinstance(stop, float):
            stop = None if self.max_epochs is None else math.ceil(stop * self.max_epochs)
        return self.epoch >= start and (stop is None or self.epoch < stop)

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Continue ``epoch`` after its first ``batches_done`` batches (sets the epoch; applies to the next
        iteration only; a later epoch starts from its beginning)."""
        self.set_epoch(epoch)
        self._resume = (int(epoch), max(0, int(batches_done)))

    def __iter__(self) -> Iterator[list[tuple]]:
        epoch = self.epoch
        skip = self._resume[1] if self._resume is not None and self._resume[0] == epoch else 0
        self._resume = None
        rng = np.random.default_rng([self.seed, epoch])
        heavy = self.heavy
        extra = () if self.dense_epochs is None else (self.dense,)
        self.batches_drawn = 0
        for n, batch in enumerate(super().__iter__()):
            size = self.sizes[int(rng.integers(len(self.sizes)))] if heavy else self.final_size
            if n < skip:  # the size draw above still happens: later batches keep their sizes
                continue
            base = (self.seed * 1_000_003 + epoch) * 1_000_003 + n * self.batch_size
            self.batches_drawn = n + 1
            yield [(int(i), size, heavy, (base + k) % 2**63, *extra) for k, i in enumerate(batch)]
