"""Training faults: a truncated checkpoint given to ckpt_path, a checkpoint of another preset, a file that is not
a training checkpoint, and ckpt_path=auto meeting a truncated last.ckpt.

(SIGTERM: tests/cli/test_interrupt.py; non-finite loss: tests/training/test_module_machinery.py; SIGKILL
mid-epoch then ckpt_path=auto: tests/sweeps.)
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from neo.checkpoints.resume import CheckpointError, resolve_ckpt_path
from neo.training.run import train
from tests.conftest import run_cli, train_overrides
from tests.faults.conftest import assert_nothing_lost, flat, output
from tests.training.helpers import compose_train


def truncate(source: Path, target: Path, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` of ``source`` to ``target``: a copy, save or download that died half-way."""
    data = source.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def test_truncated_checkpoint_given_to_ckpt_path_is_named(synth_root, tmp_path, tiny_checkpoint):
    broken = truncate(tiny_checkpoint, tmp_path / "copied/last.ckpt")
    result = run_cli("neo-train", *train_overrides(synth_root, tmp_path, "model=tiny", "trainer.max_epochs=2",
                                                   "trainer.limit_train_batches=2", "logger=none", f"ckpt_path={broken}"),
                     cwd=tmp_path)
    text = output(result)
    assert result.returncode == 1, text[-3000:]
    assert "Traceback" not in text and "UnpicklingError" not in text, text[-3000:]
    assert f"ckpt_path='{broken}': {broken} is not a readable checkpoint" in flat(text), text[-3000:]
    assert "probably truncated" in text and "ckpt_path=auto" in text
    assert not (tmp_path / "outputs/runs/default/checkpoints").exists()  # nothing ran, nothing overwritten
    assert_nothing_lost(checkpoints=(tiny_checkpoint.parent,))  # the original is untouched


def test_checkpoint_of_another_preset_names_mismatched_keys(synth_root, tmp_path, tiny_checkpoint):
    result = run_cli("neo-train", *train_overrides(synth_root, tmp_path, "model=rtdetr_r18", "trainer.max_epochs=2",
                                                   "logger=none", f"ckpt_path={tiny_checkpoint}"), cwd=tmp_path)
    text = flat(output(result))
    assert result.returncode == 1, text[-3000:]
    assert "Traceback" not in text and "Error(s) in loading state_dict" not in text, text[-3000:]
    assert f"ckpt_path='{tiny_checkpoint}' does not fit the model" in text
    assert "it was trained with model=tiny, this run builds model=rtdetr_r18" in text
    assert "keys missing from the checkpoint (net.encoder." in text  # named, a few of them
    assert "keys with another shape (net.backbone.conv1.conv1_1.conv.weight (checkpoint [8, 3, 3, 3], model [32, " in text
    assert "Fix: resume with model=tiny" in text
    assert not (tmp_path / "outputs/runs/default/checkpoints").exists()
    assert_nothing_lost(checkpoints=(tiny_checkpoint.parent,))


def test_a_weights_file_is_not_a_resumable_checkpoint(tmp_path, tiny_checkpoint):
    weights = tmp_path / "weights.pth"
    torch.save({"model": torch.load(tiny_checkpoint, weights_only=True)["state_dict"]}, weights)  # official layout
    with pytest.raises(CheckpointError, match=r"weights.pth is an official-layout state dict, not a neo checkpoint\. "
                                              r"Fix: to start a new run from these weights use pretrained="):
        resolve_ckpt_path(str(weights), "run", tmp_path / "checkpoints")


def test_auto_resume_skips_a_truncated_last_checkpoint(synth_root, tmp_path, caplog):
    """A crash while last.ckpt was being copied leaves half a file: ckpt_path=auto warns and takes the newest
    readable checkpoint instead of failing the resume (or starting over)."""

    def cfg(*extra):
        return compose_train(train_overrides(synth_root, tmp_path, "run_name=crashed", "trainer.limit_train_batches=3",
                                             "trainer.limit_val_batches=1", "logger=none", *extra), toy=True)

    first = train(cfg("trainer.max_epochs=1"))
    checkpoints = first.run_dir / "checkpoints"
    shutil.copy(checkpoints / "best.ckpt", tmp_path / "best-before.ckpt")
    truncate(checkpoints / "last.ckpt", checkpoints / "last.ckpt", keep=0.3)
    with caplog.at_level(logging.WARNING):
        resumed = train(cfg("trainer.max_epochs=2", "ckpt_path=auto"))
    assert any("ckpt_path=auto: skipping" in r.getMessage() and "last.ckpt is not a readable checkpoint" in r.getMessage()
               for r in caplog.records), caplog.text
    assert resumed.status == "finished" and resumed.steps == 6  # 3 restored from best.ckpt + 3 more
    loaded = assert_nothing_lost(checkpoints=(checkpoints,))
    assert loaded[str(checkpoints / "last.ckpt")]["global_step"] == 6  # rewritten whole by the resumed run
