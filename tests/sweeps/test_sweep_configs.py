"""The sweep and cluster presets compose: the res x lr recipe, sweep folder names, trainer=ddp_cpu, and
hydra/launcher=slurm as the real submitit launcher turns it into an sbatch script."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import neo.cli.train  # noqa: F401 - registers the neo.dirname resolver


def _compose(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose("train", overrides=["paths.root_dir=/r", *overrides], return_hydra_config=True)


def test_sweep_recipe_defines_the_resolution_by_lr_grid() -> None:
    cfg = _compose("experiment=sweep_res_lr")
    assert cfg.run_name == "sweep_res_lr" and cfg.model.name == "rtdetr_r50" and cfg.data.train_sizes is None
    assert dict(cfg.hydra.sweeper.params) == {"data.resolution": "720p,900p,1080p", "optim.lr": "1e-4,2e-4"}
    assert cfg.hydra.sweep.dir == "/r/outputs/sweeps/sweep_res_lr"
    assert "neo.sweeps.callback.SweepSummary" == cfg.hydra.callbacks.sweep_summary._target_


def test_sweep_point_folder_is_named_after_its_own_overrides() -> None:
    cfg = _compose("experiment=sweep_res_lr", "data.resolution=900p", "optim.lr=2e-4", "ckpt_path=auto", "debug=fast",
                   "data.num_workers=2", "hydra.job.num=0")  # the launcher sets job.num
    # plumbing overrides left out; debug changes what a run produces: in the name
    assert cfg.hydra.sweep.subdir == "data.resolution=900p,debug=fast,optim.lr=2e-4"


def test_ddp_cpu_preset_is_two_gloo_processes() -> None:
    trainer = _compose("trainer=ddp_cpu").trainer
    assert (trainer.accelerator, trainer.devices) == ("cpu", 2)
    assert trainer.strategy.process_group_backend == "gloo" and trainer.strategy.start_method == "popen"


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `srun` on PATH, so submitit builds its SLURM executor here (nothing is submitted)."""
    srun = tmp_path / "bin/srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{srun.parent}:{__import__('os').environ['PATH']}")
    return tmp_path


def test_slurm_preset_makes_one_requeueable_job_per_point(fake_slurm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import submitit
    from hydra.core.plugins import Plugins
    from hydra.core.utils import JobReturn
    from hydra.types import HydraContext

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.root_dir={fake_slurm}", "hydra/launcher=slurm", "trainer=ddp",
                                          "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4"],
                      return_hydra_config=True)
        context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=None)
        launcher = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=lambda c: None,
                                                           config=cfg)
    submitted = {}

    def fake_map_array(self, fn, *args):  # what the launcher would submit, one array task per sweep point
        submitted.update(executor=self, fn=fn, args=args)
        job = type("Job", (), {"results": lambda _self: [JobReturn()]})()
        return [job for _ in args[0]]

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", fake_map_array)
    points = [["optim.lr=0.0001"], ["optim.lr=0.0002"]]
    assert len(launcher.launch(points, initial_job_idx=0)) == 2
    executor = submitted["executor"]._executor
    assert submitted["args"][0] == tuple(points) and executor.max_num_timeout == 10
    script = executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("--partition=gpu", "--gpus-per-node=4", "--ntasks-per-node=4", "--nodes=1", "--time=1440",
                 "--signal=USR2@300"):
        assert f"#SBATCH {line}" in script, script
    # requeue (timeout / preemption): submitit resubmits the same call, i.e. the same overrides and folder
    again = launcher.checkpoint(points[0], "hydra.sweep.dir", 0, "job_id_for_0", {})
    assert again.args == (points[0], "hydra.sweep.dir", 0, "job_id_for_0", {})
