"""Point 4 of issue 11: a run interrupted in the middle of an epoch continues with the very next batch.

Same images, same sizes, same augmentation (pixel hashes), same final weights as an uninterrupted run,
on CPU, with data workers in the main process and in a worker process, from the interrupt checkpoint and
from a step-interval ``last.ckpt``; and no Lightning "not resumable" warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from neo.training.run import train
from tests.conftest import train_overrides
from tests.training.batch_recorder import SimulatedCrash, read_steps
from tests.training.helpers import compose_train

MAX_EPOCHS = 2  # 24 train images / batch 4 = 6 steps per epoch: 12 steps


def _cfg(synth_root: Path, out: Path, log: Path, weights: Path, workers: int, *extra: str):
    recorder = "tests.training.batch_recorder.BatchRecorder"
    return compose_train(train_overrides(
        synth_root, out, "run_name=exact", f"trainer.max_epochs={MAX_EPOCHS}", "trainer.limit_val_batches=0",
        "callbacks.best_checkpoint=null", "callbacks.image_grid=null", "logger=none",
        "data.train_scales=[0.75,1.0,1.25]", f"data.num_workers={workers}", "trainer.deterministic=true",
        f"+callbacks.recorder._target_={recorder}", f"+callbacks.recorder.path={log}",
        f"+callbacks.recorder.weights={weights}", *extra))


def _train_recording_warnings(cfg) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg)
    return [str(w.message) for w in caught]


def _seen(record: dict) -> tuple:
    return record["epoch"], record["batch_idx"], tuple(record["ids"]), tuple(record["hw"]), record["pixels"]


@pytest.fixture(scope="module")
def uninterrupted(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], dict]:
    """The reference: the same run in one go (data in the main process), its steps and final weights."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    log, weights = folder / "steps.jsonl", folder / "weights.pt"
    train(_cfg(synth_root, folder, log, weights, 0))
    steps = read_steps(log)
    assert len(steps) == 6 * MAX_EPOCHS
    assert len({tuple(r["hw"]) for r in steps}) > 1  # multi-scale really varies the size per batch
    return steps, torch.load(weights, weights_only=True)


# workers=1: the data comes from a worker process, which also proves the worker layout changes nothing
@pytest.mark.parametrize(("workers", "resume_from"), [(0, "interrupted.ckpt"), (1, "last.ckpt")])
def test_mid_epoch_resume_continues_with_the_next_batch(synth_root: Path, tmp_path: Path, uninterrupted,
                                                        workers: int, resume_from: str) -> None:
    whole, expected = uninterrupted

    out = tmp_path / "split"
    first_log, second_log, weights = tmp_path / "first.jsonl", tmp_path / "second.jsonl", tmp_path / "split.pt"
    crash = ["+callbacks.crash._target_=tests.training.batch_recorder.CrashAtStep", "+callbacks.crash.step=9"]
    every = ["callbacks.last_checkpoint.every_n_train_steps=4"]  # last.ckpt at steps 4 (mid-epoch 0) and 8
    with pytest.raises(SimulatedCrash):
        train(_cfg(synth_root, out, first_log, weights, workers, *every, *crash))
    checkpoint = out / "outputs/runs/exact/checkpoints" / resume_from
    saved = torch.load(checkpoint, weights_only=True)
    resumed_at = int(saved["global_step"])
    assert resumed_at % 6 != 0, "the checkpoint must be from the middle of an epoch"

    messages = _train_recording_warnings(_cfg(synth_root, out, second_log, weights, workers, *every,
                                              f"ckpt_path={checkpoint}"))
    assert not [m for m in messages if "not resumable" in m or "ended before the epoch ended" in m], messages

    first, second = read_steps(first_log), read_steps(second_log)
    assert [r["step"] for r in second] == list(range(resumed_at, 6 * MAX_EPOCHS))
    assert [_seen(r) for r in first[:resumed_at] + second] == [_seen(r) for r in whole]
    final = torch.load(weights, weights_only=True)
    assert final.keys() == expected.keys()
    different = [k for k in expected if not torch.equal(final[k], expected[k])]
    assert not different, f"weights differ after resume: {different[:5]}"
