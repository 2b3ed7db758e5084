"""`-m` with a DDP strategy that re-runs the command is refused before anything trains; the strategies the
message points to work."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from neo.sweeps.launch_check import LaunchError, check_multirun_launch, rerunning_strategy
from tests.sweeps.helpers import cli, output, read_json, run_cli, write_tiny_experiment

DDP_POPEN = {"_target_": "lightning.pytorch.strategies.DDPStrategy", "start_method": "popen"}


@pytest.mark.parametrize("trainer, refused", [
    ({"strategy": "ddp", "devices": 2}, True),
    ({"strategy": "ddp_find_unused_parameters_true", "devices": 2}, True),
    ({"strategy": "fsdp", "devices": 2}, True),
    ({"strategy": DDP_POPEN, "devices": 2}, True),
    ({"strategy": "auto", "accelerator": "cpu", "devices": 2}, True),  # Lightning picks ddp
    ({"strategy": "auto", "accelerator": "cpu", "devices": 1, "num_nodes": 2}, True),
    ({"strategy": "ddp_spawn", "devices": 2}, False),
    ({"strategy": "ddp_fork", "devices": 2}, False),
    ({"strategy": {**DDP_POPEN, "start_method": "spawn"}, "devices": 2}, False),
    ({"strategy": "auto", "accelerator": "cpu", "devices": 1}, False),
    ({"strategy": "auto", "accelerator": "cpu", "devices": "auto"}, False),
])
def test_which_strategies_rerun_the_command(trainer: dict, refused: bool) -> None:
    assert (rerunning_strategy(trainer) is not None) is refused


def test_under_slurm_the_scheduler_starts_the_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"trainer": {"strategy": "ddp", "devices": 2, "accelerator": "cpu"}})
    with pytest.raises(LaunchError, match="ddp_spawn"):
        check_multirun_launch(cfg)
    monkeypatch.setenv("SLURM_NTASKS", "2")  # what a submitit job with tasks_per_node=2 sees
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    check_multirun_launch(cfg)


def test_multirun_with_ddp_is_refused_with_the_fix(synth_root: Path, tmp_path: Path) -> None:
    selected = write_tiny_experiment(tmp_path / "conf", synth_root)
    result = run_cli("neo-train", "-m", *selected, f"paths.root_dir={tmp_path}", "trainer=ddp_cpu", "debug=fast",
                     "optim.lr=1e-4,2e-4", cwd=tmp_path)  # refused before any rank starts: in this process
    assert result.returncode == 1, output(result)
    message = result.stderr
    assert "cannot run in a -m sweep" in message and "re-running this command" in message, output(result)
    assert "trainer.strategy=ddp_spawn" in message and "hydra/launcher=slurm" in message
    sweep = tmp_path / "outputs/sweeps/tiny_sweep"
    first = sweep / "debug=fast,optim.lr=0.0001,trainer=ddp_cpu"
    assert [p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")] == [first.name]  # stopped at the first point
    record = read_json(first / "summary.json")
    assert record["status"] == "failed" and record["error"].startswith("LaunchError:")
    assert not (first / "checkpoints").exists()


def test_multirun_with_ddp_fork_runs_two_ranks_per_point(synth_root: Path, tmp_path: Path) -> None:
    selected = write_tiny_experiment(tmp_path / "conf", synth_root)
    result = cli("neo-train", "-m", *selected, f"paths.root_dir={tmp_path}", "trainer=ddp_cpu",
                 "trainer.strategy=ddp_fork", "debug=fast", "optim.lr=1e-4", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    rows = list(csv.DictReader((tmp_path / "outputs/sweeps/tiny_sweep/summary.csv").open()))
    assert len(rows) == 1 and rows[0]["status"] == "finished" and rows[0]["AP"] != "", rows
