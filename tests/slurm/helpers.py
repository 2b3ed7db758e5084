"""Running ``neo-train -m hydra/launcher=slurm`` against the test cluster, and watching its jobs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.slurm.cluster import Cluster
from tests.support.commands import start_command

BIN = Path(sys.executable).parent


def launcher(timeout_min: int = 10, signal_delay_s: int = 30, tasks: int = 1) -> list[str]:
    """``hydra/launcher=slurm`` sized for this 2-core node: ``tasks`` single-CPU tasks, no GPU."""
    return ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", f"hydra.launcher.tasks_per_node={tasks}",
            "hydra.launcher.cpus_per_task=1", f"hydra.launcher.timeout_min={timeout_min}",
            f"hydra.launcher.signal_delay_s={signal_delay_s}", "hydra.launcher.max_num_timeout=3"]


def tiny_run(synth_root: Path, out: Path, *extra: str) -> list[str]:
    """``experiment=cpu_demo`` cut down to seconds: the synthetic test set at 320x180, one thread, no workers."""
    return ["experiment=cpu_demo", f"paths.root_dir={out}", f"data.root={synth_root}", "data.synthetic=null",
            "data.num_classes=3", "data.resolution=320x180", "data.batch_size=4", "data.num_workers=0",
            "data.persistent_workers=false", "data.no_aug_epochs=0", "trainer.precision=32-true",
            "trainer.max_time=null", "trainer.num_sanity_val_steps=0", "callbacks.progress=null",
            "callbacks.image_grid=null", "logger=csv", "optim.schedule.warmup=2", "ckpt_path=auto", *extra]


LAUNCHED: list[subprocess.Popen] = []  # every neo-train a test started: stopped by the slurm fixtures if still running


def neo_train(cluster: Cluster, cwd: Path, *overrides: str) -> subprocess.Popen:
    """``neo-train -m <overrides>`` started as a user would, talking to ``cluster``; output in ``cwd/neo-train.log``."""
    log = (cwd / "neo-train.log").open("a")
    process = start_command("neo-train", "-m", *overrides, cwd=cwd, env=cluster.env, stdout=log)
    LAUNCHED.append(process)
    return process


def stop_launched() -> None:
    """Stop the neo-train processes a failed test left waiting (by their own PIDs)."""
    while LAUNCHED:
        process = LAUNCHED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)


def finish(process: subprocess.Popen, cwd: Path, timeout_s: float) -> tuple[int, str]:
    """Wait for ``neo-train`` to end; its exit code and output."""
    process.wait(timeout=timeout_s)
    return process.returncode, (cwd / "neo-train.log").read_text(errors="replace")


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.5):
    """Poll ``condition()`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def job_ids(sweep: Path) -> list[str]:
    """The SLURM jobs submitit ran for a sweep, from its ``.submitit/<id>`` folders.

    One point is one plain job (``7``); several are one array (``7_0``, ``7_1``; ``7`` then only holds the
    array's submission script).
    """
    folder = sweep / ".submitit"
    ids = [p.name for p in folder.iterdir() if p.is_dir() and p.name.replace("_", "").isdigit()] \
        if folder.is_dir() else []
    tasks = [job for job in ids if "_" in job]
    return sorted(tasks or ids, key=lambda job: tuple(int(part) for part in job.split("_")))


def run_dirs(sweep: Path) -> list[Path]:
    """The sweep's point folders (each holds ``.hydra/``)."""
    return sorted(p.parent for p in sweep.glob("*/.hydra"))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def job_field(cluster: Cluster, job: str, name: str) -> str:
    """One ``Name=value`` field of ``scontrol show job`` (``RunTime``, ``TimeLimit``, ``Restarts`` ...)."""
    out = cluster.run("scontrol", "show", "job", "--oneliner", job)
    return next(f.split("=", 1)[1] for f in out.split() if f.startswith(f"{name}="))


def seconds(duration: str) -> int:
    """SLURM's ``[days-]hh:mm:ss`` as seconds."""
    days, _, clock = duration.rpartition("-")
    parts = [int(x) for x in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return (int(days) if days else 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def bring_time_limit_forward(cluster: Cluster, job: str) -> None:
    """Shorten a running job's time limit so that it ends 60-120 s from now (SLURM counts whole minutes).

    Submitted with ``signal_delay_s >= 120``, the job is then due its "time limit soon" signal at once;
    slurmctld checks time limits every 30 s and sends it at its next check, as at a real time limit.
    """
    minutes = seconds(job_field(cluster, job, "RunTime")) // 60 + 2
    cluster.run("scontrol", "update", f"JobId={job}", f"TimeLimit={minutes}")


def restarts(cluster: Cluster, job: str) -> int:
    """How many times SLURM has requeued ``job`` (``Restarts`` of ``scontrol show job``)."""
    return int(job_field(cluster, job, "Restarts"))


def wait_for_requeue(cluster: Cluster, job: str, restarts_before: int, sweep: Path, timeout_s: float = 180) -> None:
    """Wait until SLURM has requeued ``job`` once more than ``restarts_before``.

    Judged by the ``Restarts`` counter, which stays, not by the job's state alone: a requeued job is
    ``PENDING`` only for the short hold before it runs again, and ``COMPLETING`` until every process of
    the old run is gone (up to ``KillWait``). On failure the message carries the job's record, the tail
    of submitit's log and of the controller's log.
    """
    try:
        wait_for(lambda: restarts(cluster, job) > restarts_before
                 or cluster.job_state(job) in ("PENDING", "REQUEUED"), timeout_s, f"job {job}'s requeue")
    except AssertionError as timeout:
        record = cluster.run("scontrol", "show", "job", "--oneliner", job)
        raise AssertionError(f"{timeout}\n--- scontrol show job\n{record}\n--- submitit log\n"
                             f"{submitit_log(sweep, job)[-3000:]}\n--- cluster logs\n{cluster.logs()}") from None


def submitit_log(sweep: Path, job: str) -> str:
    """Everything submitit's job(s) wrote for ``job`` (stdout and stderr of every run and task)."""
    return "\n".join(p.read_text(errors="replace") for p in sorted((sweep / ".submitit" / job).glob("*_log.*")))


def tensors_equal(a: dict, b: dict) -> list[str]:
    """Names of the tensors that differ between two state dicts (and names only one of them has)."""
    names = sorted(set(a) | set(b))
    return [n for n in names if n not in a or n not in b or not torch.equal(a[n], b[n])]


def rank_pids(cluster: Cluster, job: str) -> dict[int, int]:
    """``{rank: pid}`` of the job's running submitit tasks (one per SLURM task; this is a one-node cluster)."""
    job_id = job_field(cluster, job, "JobId")  # an array task's own numeric id
    pids = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = dict(item.split("=", 1) for item in (proc / "environ").read_text().split("\0") if "=" in item)
            cmdline = (proc / "cmdline").read_text()
        except OSError:
            continue
        program = Path(cmdline.split("\0", 1)[0]).name
        if environ.get("SLURM_JOB_ID") == job_id and environ.get("SLURM_CONF") == cluster.env["SLURM_CONF"] \
                and program.startswith("python") \
                and "submitit.core._submit" in cmdline:  # the task itself, not the srun that started it
            pids[int(environ["SLURM_PROCID"])] = int(proc.name)
    return pids


def alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "Z")
    return state not in ("Z", "X")


def completed(cluster: Cluster, job: str) -> None:
    """Wait until SLURM records ``job`` as COMPLETED (the launcher returns as soon as the result is written,
    while the job's last step is still ending)."""
    wait_for(lambda: cluster.job_state(job) not in ("RUNNING", "COMPLETING"), 180, f"job {job} to end")
    assert cluster.job_state(job) == "COMPLETED"
