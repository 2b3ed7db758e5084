"""The run record: which run a command is, its folder and ``summary.json``, and whether it may write where it is
pointed (runs never overwrite each other).

- :func:`run_id`: the one naming of a run (its folder under ``outputs/runs/``, its bucket checkpoints
  ``runs/<name>/checkpoints``, what ``ckpt_path=auto`` looks for): ``<run_name>``, and for a debug run
  (``debug=fast|limit|overfit|profile``) ``<run_name>-debug-<mode>``, so it never meets the real run's
  checkpoints. The YAML builds ``paths.run_dir`` with it through the ``${neo.run_id:...}`` resolver (registered
  by the ``conf`` package); :func:`run_identity` reads it off a composed config.
- :data:`SUMMARY_JSON` / :func:`summary_path` / :func:`write_summary` / :func:`read_summary`: the run folder's
  ``summary.json`` (what ``neo-train`` writes at the end, the sweep table and a finished ``ckpt_path=auto`` read).
- :func:`plan_run`: before anything is written, what the command will do: start fresh, resume, refuse
  (a fresh start where checkpoints of a run already are, locally or in the bucket: :class:`RunFolderTaken`
  names both places and the three ways on) or nothing (``ckpt_path=auto`` on a run that already finished:
  :class:`FinishedRun` carries its ``summary.json``).
- :class:`RunFolderGuard`: a Hydra callback that applies the plan of a single run before Hydra writes
  ``.hydra/`` and the log file into the run folder (a refused or finished run leaves the folder as it was).
  Sweep points are checked by the task itself (Hydra has already made their folders).
No torch import here: the guard runs in Hydra's launcher before anything heavy is loaded.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from neo.checkpoints.listing import bucket_checkpoints, local_checkpoints
from neo.config.check import ConfigError
from neo.console import print_user_error, stdout_console
from neo.files import write_text_atomic

SUMMARY_JSON = "summary.json"
log = logging.getLogger(__name__)


class RunFolderTaken(ConfigError):
    """A fresh run was pointed at a folder or bucket prefix that holds another run's checkpoints."""


@dataclass
class FinishedRun:
    """``ckpt_path=auto`` on a run whose last invocation finished all of ``trainer.max_epochs``."""

    run_dir: Path
    record: dict[str, Any]
    message: str


def debug_mode(cfg: DictConfig) -> str | None:
    """``fast`` / ``limit`` / ``overfit`` / ``profile`` when a debug preset is active (``debug_mode`` key)."""
    mode = cfg.get("debug_mode")
    return str(mode) if mode else None


def run_id(run_name: Any, mode: Any = None) -> str:
    """A run's name for its folder, its bucket checkpoints and ``ckpt_path=auto``: ``<run_name>``, or
    ``<run_name>-debug-<mode>`` for a debug preset's run (``mode``: fast | limit | overfit | profile)."""
    return f"{run_name}-debug-{mode}" if mode else str(run_name)


def run_identity(cfg: DictConfig) -> str:
    """:func:`run_id` of a composed config (``run_name`` and ``debug_mode``)."""
    return run_id(cfg.run_name, debug_mode(cfg))


def summary_path(run_dir: str | Path) -> Path:
    """``<run_dir>/summary.json``."""
    return Path(run_dir) / SUMMARY_JSON


def write_summary(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write ``<run_dir>/summary.json`` atomically (the sweep table may read it from another process meanwhile);
    the folder is created if needed. ``record``: JSON-safe (see :func:`neo.training.report.summary_record`)."""
    return write_text_atomic(summary_path(run_dir), json.dumps(record, indent=2, default=str))


class BucketNotChecked(ConfigError):
    """A fresh run whose bucket could not be listed: it might replace a run that exists only there."""


def bucket_holdings(cfg: DictConfig) -> tuple[str | None, list[str], str | None]:
    """(URL of the run's bucket checkpoint folder, checkpoint names there, why it could not be listed or None);
    (None, [], None) without a bucket push. Offline with a remote bucket counts as "could not be listed"."""
    if not cfg.get("sync_checkpoints", True) or cfg.get("storage") is None or not cfg.storage.get("bucket"):
        return None, [], None
    from neo.storage.settings import StorageSettings

    settings = StorageSettings.from_config(cfg.storage)
    url = settings.url(settings.run_checkpoint_dir(run_identity(cfg)))
    if settings.offline_remote:
        return url, [], "offline mode is on (NEO_OFFLINE or storage.offline)"
    try:
        remote = bucket_checkpoints(settings, run_identity(cfg))
    except Exception as exc:  # noqa: BLE001 - network, credentials, server gone
        from neo.storage.errors import classify

        return url, [], f"{classify(exc)}: " + f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return url, sorted(f.name for f in remote), None


def check_fresh_start(cfg: DictConfig) -> list[str]:
    """Refuse (RunFolderTaken) a run without ``ckpt_path`` whose folder or bucket prefix holds checkpoints,
    unless ``overwrite=true``; refuse (BucketNotChecked) one whose bucket could not be listed, unless
    ``storage.require=false``. Returns notes for the run's summary (the bucket was not checked)."""
    if cfg.get("ckpt_path") is not None or cfg.get("overwrite", False):
        return []
    checkpoint_dir = Path(str(cfg.paths.checkpoint_dir))
    local = local_checkpoints(checkpoint_dir)
    url, remote, unchecked = bucket_holdings(cfg)
    notes = []
    if unchecked and not local:
        from neo.storage.redact import redact

        name = str(cfg.run_name)
        if _as_bool(cfg.storage.get("require", True)):
            raise BucketNotChecked(redact(
                f"could not check whether {url} already holds checkpoints of run {name!r} ({unchecked}). A fresh run "
                f"could replace a run that exists only in the bucket, so it does not start. Ways on: restore access "
                f"to the bucket and run the same command again (ckpt_path=auto continues that run if it is there); "
                f"or start a run with another run_name; or train anyway with storage.require=false (its pushes never "
                f"replace an object it did not write, and its summary says the bucket was not checked)."))
        notes.append(redact(f"the bucket was not checked before this fresh run started ({unchecked}); "
                            f"storage.require=false"))
        log.warning("Could not check %s for checkpoints of run %r (%s): training anyway (storage.require=false); "
                    "this run will replace no bucket object it did not write.", redact(url), name, redact(unchecked))
    if not local and not remote:
        return notes
    held = []
    if local:
        held.append(f"{checkpoint_dir} holds {', '.join(sorted(f.name for f in local))}")
    if remote:
        held.append(f"{url} holds {', '.join(remote)}")
    name = str(cfg.run_name)
    raise RunFolderTaken(
        f"run {name!r} already exists: {' and '.join(held)}. A new run there would replace them. Ways on: "
        f"continue it from its newest checkpoint with ckpt_path=auto (a finished run says so and shows its "
        f"summary); or start a separate run with run_name={name}_2 (any new name); or replace it on purpose "
        f"with overwrite=true."
    )


def check_owner(cfg: DictConfig) -> None:
    """Refuse (RunFolderTaken, naming the owner) a run whose bucket prefix another run owns (its lease); reads
    only. An unreachable bucket is left to :func:`check_fresh_start` and the lease taken in ``train``."""
    if not cfg.get("sync_checkpoints", True) or cfg.get("storage") is None or not cfg.storage.get("bucket") \
            or _global_rank() != 0:  # the lease is rank 0's; the other ranks of the same run never check it
        return
    from neo.storage.lease import LeaseHeld, RunLease
    from neo.storage.settings import StorageSettings

    settings = StorageSettings.from_config(cfg.storage)
    if settings.offline_remote:
        return
    try:
        RunLease(settings, run_identity(cfg)).check_free()
    except LeaseHeld as exc:
        raise RunFolderTaken(str(exc)) from None
    except Exception:  # noqa: BLE001 - unreachable: check_fresh_start and the lease in train() say so
        return


def _global_rank() -> int:
    """This process's global rank from the launcher's environment (as Lightning reads it), 0 when unset."""
    import os

    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


def _as_bool(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on") if isinstance(value, str) else bool(value)


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The run folder's ``summary.json`` (None when absent or unreadable)."""
    try:
        record = json.loads(summary_path(run_dir).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def finished_run(cfg: DictConfig) -> FinishedRun | None:
    """The finished run that ``ckpt_path=auto`` points at, when there is nothing left to train.

    Finished: its ``summary.json`` says ``finished`` after ``epochs`` >= this command's ``trainer.max_epochs``
    (or ``steps`` >= ``trainer.max_steps``), and a checkpoint of it is still there. Raising
    ``trainer.max_epochs`` makes it unfinished again: ``ckpt_path=auto`` then continues it.
    """
    if cfg.get("ckpt_path") != "auto":
        return None
    run_dir = Path(str(cfg.paths.run_dir))
    record = read_summary(run_dir)
    if not record or record.get("status") != "finished" or not local_checkpoints(cfg.paths.checkpoint_dir):
        return None
    try:
        max_epochs = int(cfg.trainer.get("max_epochs") or -1)
        max_steps = int(cfg.trainer.get("max_steps") or -1)
        epochs, steps = int(record.get("epochs") or 0), int(record.get("steps") or 0)
    except (TypeError, ValueError):  # a bad value: the config check names it when the run starts
        return None
    done = (max_steps > 0 and steps >= max_steps) or (max_epochs > 0 and epochs >= max_epochs)
    if not done:
        return None
    limit = f"trainer.max_steps={max_steps}" if max_steps > 0 and steps >= max_steps else \
        f"trainer.max_epochs={max_epochs}"
    message = (
        f"run {str(cfg.run_name)!r} already finished ({epochs} epochs, {steps} steps; {limit}): nothing to train. "
        f"Its summary is below. To train it further, raise {limit.split('=')[0]} and keep ckpt_path=auto; for a "
        f"new run use run_name=<new name>; to start this one over, overwrite=true without ckpt_path."
    )
    return FinishedRun(run_dir=run_dir, record=record, message=message)


def stopped_run(cfg: DictConfig) -> FinishedRun | None:
    """A run that ``ckpt_path=auto`` resumed without training a step (``trainer.max_time`` used up, early
    stopping, ``max_epochs`` reached by the checkpoint): its earlier ``summary.json`` is the one to show."""
    run_dir = Path(str(cfg.paths.run_dir))
    record = read_summary(run_dir)
    if not record or record.get("status") != "finished":
        return None
    message = (
        f"run {str(cfg.run_name)!r} already finished: resumed, it had nothing left to train (its trainer.max_time, "
        f"trainer.max_epochs or early stopping was already reached). Its summary is below. To train it further, "
        f"raise that limit and keep ckpt_path=auto; for a new run use run_name=<new name>; to start this one over, "
        f"overwrite=true without ckpt_path."
    )
    return FinishedRun(run_dir=run_dir, record=record, message=message)


def print_finished(finished: FinishedRun) -> None:
    """Say the run is finished and show its summary table (from ``summary.json``)."""
    from neo.training.report import print_summary

    console = stdout_console()
    console.print(f"[bold green]neo-train:[/bold green] {finished.message}", highlight=False)
    print_summary(summary_from_record(finished.record, finished.run_dir, status="already finished"), console)


def summary_from_record(record: dict[str, Any], run_dir: Path, status: str):
    """A :class:`neo.training.report.TrainSummary` rebuilt from a ``summary.json`` record."""
    from neo.training.report import TrainSummary

    def path(key: str) -> Path | None:
        return Path(record[key]) if record.get(key) else None

    return TrainSummary(
        metrics={k: float(v) for k, v in (record.get("metrics") or {}).items() if isinstance(v, (int, float))},
        images_per_s=float(record.get("images_per_s") or 0.0), epochs=int(record.get("epochs") or 0),
        steps=int(record.get("steps") or 0), wall_time_s=float(record.get("wall_time_s") or 0.0),
        best_checkpoint=path("best_checkpoint"), last_checkpoint=path("last_checkpoint"),
        tensorboard_dir=path("tensorboard_dir"), run_dir=run_dir, status=status,
    )


def _config_problems(config: DictConfig) -> str | None:
    """neo-train's configuration check (no torch) on the composed config, before Hydra writes anything."""
    from hydra.core.hydra_config import HydraConfig

    from neo.config.check import early_config_error

    try:
        if not HydraConfig.initialized():
            HydraConfig.instance().set_config(config)  # run_job sets the same config right after this callback
        return early_config_error(config)
    except Exception:  # noqa: BLE001 - the task's own check runs again and reports it
        return None


def bucket_setting_problem(config: DictConfig, credentials_only: bool = False) -> str | None:
    """Credentials anywhere in the command line or the config, or an invalid storage setting: the message (redacted,
    naming the value and the fix), or None. Checked before Hydra writes ``.hydra/`` or a log file, so a refused
    bucket setting leaves no file behind and credentials never reach one."""
    from neo.storage.hydra_guard import credentials_problem
    from neo.storage.redact import redact

    problem = credentials_problem(config)
    if problem or credentials_only or config.get("storage") is None:
        return problem
    from neo.storage.errors import StorageConfigError
    from neo.storage.settings import StorageSettings

    try:
        StorageSettings.from_config(config.storage)
    except StorageConfigError as exc:
        return redact(f"storage: {exc}")
    except Exception:  # noqa: BLE001 - an unresolvable interpolation: the run's config check names it
        return None
    return None


class RunFolderGuard(Callback):
    """Hydra callback: a single run that would overwrite another run, or has nothing left to train, stops
    before Hydra writes into its folder (exit 1 with one paragraph / exit 0 with the summary). A bucket setting
    that is refused (a typo, credentials in it) stops every run and sweep before anything is written."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        problem = bucket_setting_problem(config, credentials_only=True)  # a bad point is a failed row of its own
        if problem:
            sys.exit(print_user_error("neo-train", problem))

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        problem = bucket_setting_problem(config, credentials_only=True)
        if problem:
            sys.exit(print_user_error("neo-train", problem))
        problems = _config_problems(config)
        if problems:  # every problem at once, as neo-train's own check prints them, before anything is written
            sys.exit(print_user_error("neo-train", problems))
        try:
            check_owner(config)
            finished = finished_run(config)
            if finished is None:
                check_fresh_start(config)
        except ConfigError as exc:
            sys.exit(print_user_error("neo-train", exc))
        except Exception:  # noqa: BLE001 - an invalid value: the run's config check names it with its fix
            return
        if finished is not None:
            print_finished(finished)
            sys.exit(0)
