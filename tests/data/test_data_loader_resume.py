"""The train loader's position: state_dict / load_state_dict continue an epoch at the next batch (no trainer)."""

from __future__ import annotations

from neo.data.loader import ResumableDataLoader
from neo.data.sampler import EpochShuffleSampler, MultiScaleBatchSampler

SIZES = [(144, 256), (180, 320), (216, 384)]


class Echo:
    """A dataset that returns what the sampler asked for: (index, (H, W), heavy, seed)."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, key: tuple) -> tuple:
        return key


def _loader(seed: int = 3) -> ResumableDataLoader:
    sampler = MultiScaleBatchSampler(EpochShuffleSampler(20, seed=seed), 4, True, sizes=SIZES, seed=seed)
    return ResumableDataLoader(Echo(), batch_sampler=sampler, collate_fn=lambda batch: batch)


def _epoch(loader: ResumableDataLoader, epoch: int) -> list:
    loader.batch_sampler.set_epoch(epoch)
    return list(loader)


def test_a_saved_position_continues_with_the_next_batch_of_that_epoch() -> None:
    whole = _epoch(_loader(), 1)
    stopped = _loader()
    stopped.batch_sampler.set_epoch(1)
    iterator = iter(stopped)
    seen = [next(iterator), next(iterator)]
    state = stopped.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == 2

    resumed = _loader()
    resumed.load_state_dict(state)  # a new process: sampler at epoch 0 until told
    rest = list(resumed)
    assert seen + rest == whole  # same indices, same size per batch, same per-sample seeds
    assert list(resumed) == whole  # the position applies once; the next iteration is the whole epoch


def test_a_full_epoch_resumes_at_the_next_epoch_start_and_another_seed_at_the_epoch_start() -> None:
    done = _loader()
    _epoch(done, 0)
    assert done.state_dict()["epoch"] == 1 and done.state_dict()["batches_done"] == 0
    fresh = _loader()
    fresh.load_state_dict(done.state_dict())
    assert list(fresh) == _epoch(_loader(), 1)

    other = _loader(seed=4)
    other.load_state_dict({"epoch": 2, "batches_done": 3, "seed": 3})  # a position of other images
    assert list(other) == _epoch(_loader(seed=4), 2)
