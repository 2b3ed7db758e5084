"""One tiny trained run per test session: trained once, read by every test that only needs "a trained
checkpoint" (tests that change a checkpoint take a copy: the ``trained_checkpoint`` fixture)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.overrides import compose_train, train_overrides

# 2 optimizer steps (batch 4) and 1 validation batch of the tiny preset: best.ckpt and last.ckpt with EMA weights.
TRAINED_RUN = ("model=tiny", "run_name=tiny", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
               "trainer.limit_val_batches=1", "logger=none", "sync_checkpoints=false")


def train_tiny_run(synth_root: Path, out: Path) -> Path:
    """Train ``TRAINED_RUN`` on ``synth_root`` under ``out`` in this process; its run folder."""
    from neo.training.run import train

    summary = train(compose_train(train_overrides(synth_root, out, *TRAINED_RUN)))
    assert summary.status == "finished", summary
    return Path(summary.run_dir)


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative names): the shared run must end the session as it began."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
