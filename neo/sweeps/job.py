"""What a task knows about its Hydra job, and how a sweep point gets its own run folder and run name.

In a ``-m`` sweep every point writes into Hydra's job folder ``<hydra.sweep.dir>/<hydra.sweep.subdir>``
(deterministic: see :mod:`neo.sweeps.dirnames`), and its ``run_name`` becomes ``<run_name>__<subdir>``
(``/`` replaced) so that bucket checkpoints (``runs/<run_name>/checkpoints``) and ``ckpt_path=auto``
stay per point too.
Re-running the same sweep, or SLURM requeueing one point, therefore continues each point where it
stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, open_dict


@dataclass
class JobInfo:
    """The Hydra job this process runs (``multirun`` False and no folders outside a Hydra app)."""

    multirun: bool = False
    overrides: list[str] = field(default_factory=list)
    output_dir: Path | None = None
    sweep_dir: Path | None = None
    num: int | None = None

    @property
    def subdir(self) -> str | None:
        """The job folder relative to the sweep folder (``data.resolution=720p,optim.lr=0.0001``)."""
        if not self.multirun or self.output_dir is None:
            return None
        if self.sweep_dir is not None:
            try:
                return self.output_dir.relative_to(self.sweep_dir).as_posix()
            except ValueError:
                pass
        return self.output_dir.name


def current_job() -> JobInfo:
    """Read :class:`JobInfo` from Hydra's runtime config (an empty one outside ``@hydra.main``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return JobInfo()
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    output_dir = Path(hydra_cfg.runtime.output_dir) if hydra_cfg.runtime.output_dir else None
    return JobInfo(
        multirun=multirun,
        overrides=[str(o) for o in hydra_cfg.overrides.task],
        output_dir=output_dir,
        sweep_dir=Path(str(hydra_cfg.sweep.dir)) if multirun else None,
        num=int(hydra_cfg.job.num) if multirun and hydra_cfg.job.get("num") is not None else None,
    )


def use_job_dir(cfg: DictConfig, job: JobInfo) -> None:
    """In a sweep: ``paths.run_dir`` = Hydra's job folder, ``run_name`` = ``<run_name>__<subdir>``."""
    if not job.multirun or job.output_dir is None:
        return
    with open_dict(cfg):
        cfg.paths.run_dir = str(job.output_dir)
        cfg.run_name = point_run_name(str(cfg.run_name), job)


def point_run_name(run_name: str, job: JobInfo) -> str:
    """The run name of one sweep point: one folder-safe name, unique within the sweep."""
    subdir = (job.subdir or f"job{job.num}").replace("/", "_").replace("\\", "_")
    return f"{run_name}__{subdir}"
