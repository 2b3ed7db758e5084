"""Running neo-train / neo-eval as a user does (in this process or as subprocesses) on a small synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.commands import BIN, ENV, run_cli, run_command, tail  # noqa: F401 - imported from here

cli = run_command  # a neo console script as a new process: cli("neo-train", *args, cwd=...)
output = tail  # the end of a finished command's stdout and stderr, for assertion messages


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
