"""`neo-train model=dfine_n` runs end to end: the Lightning module, criterion and postprocessor take D-FINE's outputs."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli, train_overrides
from tests.support.commands import tail


def test_neo_train_dfine_n_one_step(synth_root: Path, tmp_path: Path) -> None:
    result = run_cli("neo-train", *train_overrides(synth_root, tmp_path, "model=dfine_n", "debug=fast",
                                                   "run_name=dfine"), cwd=tmp_path)
    assert result.returncode == 0, tail(result)
    assert "neo-train: finished" in result.stdout
    assert "epochs / optimizer steps │ 1 / 1" in result.stdout
