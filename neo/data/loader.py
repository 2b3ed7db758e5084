"""The training DataLoader whose position goes into checkpoints, so a mid-epoch resume is exact.

Lightning saves ``state_dict()`` of every train loader that has one in the checkpoint (fit loop state
``combined_loader``) and hands it back through ``load_state_dict`` before the resumed fit creates its
first iterator. The position is (epoch, batches the training loop finished in it): the batch sampler
derives order, sizes and augmentation seeds from (seed, epoch, batch number), so nothing else is needed
to continue with the very next batch. Workers (any number, persistent or not) only ever see the
indices the sampler hands out, so their count and seeds play no part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import DataLoader

# (epoch, batches finished in it) as the training loop sees it; None when no training loop drives the loader
Progress = Callable[[], "tuple[int, int] | None"]


class ResumableDataLoader(DataLoader):
    """A DataLoader over a batch sampler with ``resume_at(epoch, batches_done)`` (MultiScaleBatchSampler).

    ``progress``: where the training loop is (NeoDataModule reads Lightning's batch progress, which
    counts batches whose step ran, not the ones workers or Lightning's prefetcher fetched ahead). Without
    it the position is the number of batches the sampler handed out in the current epoch.
    """

    STATE_VERSION = 1

    def __init__(self, *args: Any, progress: Progress | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress = progress

    def _position(self) -> tuple[int, int]:
        at = self.progress() if self.progress is not None else None
        epoch, done = at if at is not None else (int(self.batch_sampler.epoch), int(self.batch_sampler.batches_drawn))
        return (epoch + 1, 0) if done >= len(self) else (epoch, done)

    def state_dict(self) -> dict[str, Any]:
        """``{"version", "epoch", "batches_done", "seed", "max_epochs"}``: plain ints (weights_only-safe)."""
        epoch, done = self._position()
        sampler = self.batch_sampler
        return {"version": self.STATE_VERSION, "epoch": int(epoch), "batches_done": int(done),
                "seed": int(sampler.seed), "max_epochs": sampler.max_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next iteration continue at the saved position (the next epoch's start when it was full).

        A checkpoint of another data seed resumes at the start of its epoch: the saved position would name
        other images.
        """
        sampler = self.batch_sampler
        epoch, done = int(state.get("epoch", 0)), int(state.get("batches_done", 0))
        if int(state.get("seed", sampler.seed)) != int(sampler.seed):
            done = 0
        if sampler.max_epochs is None and state.get("max_epochs") is not None:
            sampler.max_epochs = int(state["max_epochs"])
        sampler.resume_at(epoch, done)
