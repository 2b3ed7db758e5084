"""Running neo-train / neo-eval as a user does (subprocesses) on a small synthetic dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def cli(command: str, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a neo console script; stdout and stderr captured as text."""
    return subprocess.run([str(BIN / command), *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def output(result: subprocess.CompletedProcess) -> str:
    """The tail of a finished command's output, for assertion messages."""
    return result.stdout[-4000:] + "\n--- stderr ---\n" + result.stderr[-4000:]


def write_tiny_experiment(folder: Path, synth_root: Path, name: str = "tiny_sweep") -> list[str]:
    """An experiment file with the small-CPU settings of tests/conftest.py:train_overrides.

    Settings in an experiment (excluded from sweep folder names) leave the sweep folders named after
    the swept overrides only, as a user's sweep of a recipe is. Returns the overrides that select it.
    """
    group = folder / "experiment"
    group.mkdir(parents=True, exist_ok=True)
    (group / f"{name}.yaml").write_text(f"""# @package _global_
run_name: {name}
print_config: false
torch_threads: 1
data:
  root: {synth_root}
  synthetic: null
  num_classes: 3
  resolution: 320x180
  train_scales: [1.0]
  batch_size: 4
  num_workers: 0
  persistent_workers: false
  no_aug_epochs: 0
trainer:
  num_sanity_val_steps: 0
callbacks:
  progress: null
""")
    return [f"hydra.searchpath=[file://{folder}]", f"experiment={name}"]


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
