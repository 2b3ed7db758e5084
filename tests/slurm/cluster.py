"""A real single-node SLURM cluster for the tests: munge + slurmctld + slurmd, all state in one folder.

Follows ``reference/slurm.md`` (Debian's slurm-wlm 22.05). Everything lives under the given folder:
the munge key, socket and log, ``slurm.conf``, the controller's state, the node's spool and both logs;
nothing under /etc is touched, and the daemons are stopped by the PIDs in their pid files.
``AuthInfo=cred_expire`` is lowered from its 120 s default: it is also how long SLURM holds a
requeued job before starting it again (``man slurm.conf``), the wait every requeue test pays.
``KillWait`` (SIGTERM to SIGKILL at a requeue or limit) is raised to 120 s so that a rank that hangs
instead of exiting stays visible long enough for a test to see it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue")
REQUEUE_HOLD_S = 10  # AuthInfo cred_expire: credential lifetime = the requeued job's hold before it may start again


class ClusterError(RuntimeError):
    """The scheduler could not be installed or started (the message says which step and where its log is)."""


def installed() -> bool:
    return all(shutil.which(name) for name in DAEMONS)


def install() -> None:
    """``apt-get install slurm-wlm munge`` (root only: CI's fresh machine)."""
    if os.geteuid() != 0:
        raise ClusterError("slurm-wlm and munge are not installed and installing them needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *PACKAGES]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise ClusterError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def slurm_conf(folder: Path, host: str, cpus: int, ports: tuple[int, int]) -> str:
    """The ``slurm.conf`` of reference/slurm.md with every path under ``folder`` and a short requeue hold.

    ``ports``: slurmctld's and slurmd's (free ones, so a second test session or a site cluster is no clash).
    """
    return f"""ClusterName=neotest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge/munge.socket,cred_expire={REQUEUE_HOLD_S}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobRequeue=1
KillWait=120
InactiveLimit=0
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE OverSubscribe=FORCE:4 State=UP
"""


@dataclass
class Cluster:
    """A running cluster: ``env`` is what every SLURM command (and neo-train -m hydra/launcher=slurm) needs."""

    folder: Path
    env: dict[str, str]

    def run(self, *command: str, timeout: int = 60) -> str:
        """Run a SLURM client command (``squeue``, ``scontrol``, ``scancel`` ...); its stdout."""
        result = subprocess.run(list(command), env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise ClusterError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def job_state(self, job_id: str) -> str:
        """``PENDING`` / ``RUNNING`` / ``COMPLETED`` ... of one job (from the controller, no accounting needed)."""
        out = self.run("scontrol", "show", "job", "--oneliner", job_id)
        return next(f.split("=", 1)[1] for f in out.split() if f.startswith("JobState="))

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted((self.folder / "log").glob("*.log")))

    def cancel_all_jobs(self, wait_s: float = 180.0) -> None:
        """Cancel every job of this (test-only) cluster and wait until none runs."""
        try:
            jobs = self.run("squeue", "--noheader", "--format=%A").split()
            if jobs:
                self.run("scancel", "--full", *jobs)
            deadline = time.monotonic() + wait_s
            while jobs and time.monotonic() < deadline and self.run("squeue", "--noheader", "--format=%A").split():
                time.sleep(1)
        except (ClusterError, subprocess.TimeoutExpired):
            pass  # the controller is already gone: nothing left to cancel

    def stop(self) -> None:
        """Cancel its jobs, then stop slurmd, slurmctld and munged by the PIDs in their pid files (never by name)."""
        self.cancel_all_jobs()
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            _kill_pid_file(self.folder / pid_file)


def _kill_pid_file(path: Path, wait_s: float = 15.0) -> None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def _start(command: list[str], env: dict[str, str], what: str, log: Path) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise ClusterError(f"{what} did not start ({result.returncode}): {result.stderr.strip()}\n{tail}")


def start(folder: Path, cpus: int = 2, timeout_s: float = 60.0) -> Cluster:
    """Start munged, slurmctld and slurmd with their state in ``folder``; wait until the node is idle."""
    if not installed():
        install()
    host = socket.gethostname()
    munge = folder / "munge"
    for sub in (munge, folder / "state", folder / "spool", folder / "log"):
        sub.mkdir(parents=True, exist_ok=True)
    os.chmod(munge, 0o700)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, host, cpus, (free_port(), free_port())))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for name in list(env):  # a test run inside a SLURM job must not hand its job's variables to sbatch
        if name.startswith("SLURM_") and name != "SLURM_CONF":
            env.pop(name)
    cluster = Cluster(folder, env)
    try:
        _start(["munged", "--force", f"--socket={munge}/munge.socket", f"--key-file={key}",
                f"--pid-file={munge}/munged.pid", f"--log-file={folder}/log/munged.log",
                f"--seed-file={munge}/munged.seed"], env, "munged", folder / "log" / "munged.log")
        _start(["slurmctld"], env, "slurmctld", folder / "log" / "slurmctld.log")
        _start(["slurmd"], env, "slurmd", folder / "log" / "slurmd.log")
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            try:
                state = cluster.run("sinfo", "--noheader", "--format=%t").strip()
            except ClusterError:
                state = ""
            if state == "idle":
                return cluster
            time.sleep(1)
        raise ClusterError(f"the node is not idle after {timeout_s:.0f} s (sinfo: {state!r})\n{cluster.logs()}")
    except BaseException:
        cluster.stop()
        raise
