"""Build a training run from a composed config and run it: ``train(cfg) -> TrainSummary``.

The only place where ``cfg`` becomes objects: DataModule (``cfg.data``), RTDETRModule (``cfg.model``,
``cfg.optim``), callbacks and loggers (``cfg.callbacks``/``cfg.logger``, one instantiable node per
key, null entries skipped) and the Trainer (``cfg.trainer``). Everything handed to the module is a
plain container (checkpoints load with ``weights_only=True``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from neo.checkpoints.pretrained import (
    PRETRAINED_KEYS,
    fit_normalisation,
    load_detector_weights,
    log_report,
    read_detector_weights,
)
from neo.checkpoints.resume import resolve_ckpt_path, resolve_identifier
from neo.config.check import check_config
from neo.training.callbacks import FitStartRecorder, InterruptCheckpoint, TrainSpeedMonitor
from neo.training.machine import MachineSettings, machine_settings
from neo.training.module import NonFiniteLossError, RTDETRModule
from neo.training.report import TrainSummary, print_config_tree
from neo.training.run_folder import check_fresh_start, run_identity
from neo.training.speed_check import ThroughputCheck, speed_notes

log = logging.getLogger(__name__)



def plain(cfg: Any) -> Any:
    """Resolved plain containers (dict/list/str/int/float/bool/None) of a config node."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def instantiate_each(node: DictConfig | None) -> list[Any]:
    """Instantiate every non-null child of a keyed node (``callbacks``, ``logger``)."""
    if node is None:
        return []
    return [instantiate(child) for _, child in node.items() if child is not None and "_target_" in child]


def build_loggers(node: DictConfig | None, resume_step: int | None) -> list[Logger]:
    """The configured loggers; on a resume TensorBoard continues the run's one log folder, and events at or
    after the resumed step (written by the interrupted process past its last checkpoint) are dropped
    (``purge_step``), so every curve stays one monotonic line."""
    if node is None:
        return []
    loggers = []
    for _, child in node.items():
        if child is None or "_target_" not in child:
            continue
        tensorboard = str(child._target_).rsplit(".", 1)[-1] == TensorBoardLogger.__name__
        extra = {"purge_step": resume_step} if tensorboard and resume_step is not None else {}
        loggers.append(instantiate(child, **extra))  # extra keywords reach TensorBoard's SummaryWriter
    return loggers


def _checkpoint_step(path: Path | None) -> int | None:
    """The optimizer step stored in a checkpoint file (None for no file)."""
    if path is None:
        return None
    from neo.checkpoints.format import load_file

    return int(load_file(path, key="ckpt_path", mmap=True).get("global_step", 0))


def resolve_pretrained(model_cfg: dict, storage_cfg: Any) -> dict:
    """Replace weight identifiers in the model config by local files (through neo.storage)."""
    for dotted in PRETRAINED_KEYS:
        parent, _, leaf = dotted.rpartition(".")
        node: Any = model_cfg
        for part in parent.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, dict) and isinstance(node.get(leaf), str) and node[leaf]:
            node[leaf] = str(resolve_identifier(node[leaf], storage_cfg))
    return model_cfg


def build_module(cfg: DictConfig) -> RTDETRModule:
    """The LightningModule of a run config (pretrained identifiers resolved to local files).

    With ``pretrained=`` the whole detector starts from that checkpoint (neo or official RT-DETR); the
    input normalisation of ``cfg.model`` is first set to the one the weights were trained with.
    """
    model_cfg = resolve_pretrained(plain(cfg.model), cfg.get("storage"))
    run_config = plain(cfg)
    weights = None
    if cfg.get("pretrained"):
        weights_file = resolve_identifier(str(cfg.pretrained), cfg.get("storage"), key="pretrained")
        weights = read_detector_weights(weights_file, value=cfg.pretrained)  # CheckpointError: one paragraph
        note = fit_normalisation(model_cfg, weights)
        if note:
            fit_normalisation(run_config["model"], weights)
            log.warning(note)
    module = RTDETRModule(
        model=model_cfg,
        optim=plain(cfg.optim),
        channels_last=bool(cfg.get("channels_last", False)),
        run_config=run_config,
    )
    if weights is not None:
        report = load_detector_weights(module.net, weights)  # another preset: CheckpointError naming the right one
        log_report(str(cfg.pretrained), weights, report)
    return module


def resolve_machine_settings(cfg: DictConfig) -> MachineSettings:
    """``trainer.precision`` and ``channels_last`` (``auto`` or given) decided for this machine and written into
    ``cfg``, so the module, the Trainer and the checkpoint's run config (what ``neo-eval`` reads) all hold what the
    run really uses (:mod:`neo.training.precision` has the rules)."""
    settings = machine_settings(cfg.trainer.get("precision", "auto"), cfg.get("channels_last", False),
                                cfg.trainer.get("accelerator", "auto"))
    with open_dict(cfg):
        cfg.trainer.precision = settings.precision.precision
        cfg.channels_last = settings.channels_last
    log.info("precision %s, channels_last %s (%s)", settings.precision.describe(), settings.channels_last,
             settings.channels_last_reason)
    return settings


def checkpoint_plugins(cfg: DictConfig, lease: Any = None) -> list[Any]:
    """``neo.checkpoints.sync.CheckpointSync`` (background push of checkpoints to the bucket) when a bucket is set."""
    if not syncs_to_bucket(cfg):
        return []
    from neo.checkpoints.resume import storage_settings
    from neo.checkpoints.sync import CheckpointSync

    return [CheckpointSync(storage_settings(cfg.storage), run_identity(cfg), lease=lease)]


def syncs_to_bucket(cfg: DictConfig) -> bool:
    return bool(cfg.get("sync_checkpoints", True) and cfg.get("storage") is not None and cfg.storage.get("bucket"))


def acquire_lease(cfg: DictConfig, notes: list[str]) -> Any:
    """Own the run's bucket prefix (``neo.storage.lease.RunLease``) on global rank 0; None without a bucket push,
    offline with a remote bucket, or (``storage.require=false``) when the bucket cannot be reached.
    Raises RunFolderTaken naming the owner when another run holds it."""
    from lightning.pytorch.utilities import rank_zero_only

    if not syncs_to_bucket(cfg) or rank_zero_only.rank != 0:
        return None
    from neo.checkpoints.resume import storage_settings
    from neo.storage.errors import classify
    from neo.storage.lease import LeaseHeld, RunLease
    from neo.training.run_folder import BucketNotChecked, RunFolderTaken

    settings = storage_settings(cfg.storage)
    if settings.offline_remote:
        return None
    try:
        lease = RunLease(settings, run_identity(cfg)).acquire()
    except LeaseHeld as exc:
        raise RunFolderTaken(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the bucket is unreachable
        from neo.storage.errors import access_hint

        reason = f"{classify(exc)}: " + f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        url = settings.url(f"{settings.run_checkpoint_dir(run_identity(cfg)).rsplit('/', 1)[0]}/lease.json")
        if settings.require and cfg.get("ckpt_path") is None:  # a resume goes on: its pushes are guarded anyway
            hint = access_hint(exc, settings.protocol)
            raise BucketNotChecked(
                f"could not take the lease {url} of run {str(cfg.run_name)!r} ({reason}).{' ' + hint if hint else ''} "
                f"Without it another run with this run_name could push into the same bucket prefix. Restore access "
                f"to the bucket and run the same command again, or train anyway with storage.require=false.") from None
        log.warning("Could not take the lease %s (%s): training without it; this run will replace no bucket object "
                    "it did not write.", url, reason)
        notes.append(f"this run did not own its bucket prefix: {url} could not be written ({reason})")
        return None
    if lease.took_over:
        notes.append(f"took over {lease.url} from {lease.took_over}")
    return lease


def without_logger_only_callbacks(callbacks: list[Callback], loggers: list[Logger]) -> list[Callback]:
    """Drop callbacks that only write to a logger (``LearningRateMonitor``) when ``logger=none``."""
    if loggers:
        return callbacks
    return [c for c in callbacks if not isinstance(c, LearningRateMonitor)]


def build_trainer(cfg: DictConfig, callbacks: list[Callback], loggers: list[Logger], lease: Any = None) -> pl.Trainer:
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                       plugins=checkpoint_plugins(cfg, lease), _convert_="all")


def _find(callbacks: list[Callback], kind: type) -> Any:
    return next((c for c in callbacks if isinstance(c, kind)), None)


def train(cfg: DictConfig) -> TrainSummary:
    """Check the config, build everything, fit, and return the run's figures.

    Raises :class:`neo.config.check.ConfigError` on invalid values (before anything is built)
    and :class:`NonFiniteLossError` when the loss stops being finite (after saving the last good state).
    """
    check_config(cfg)
    notes = check_fresh_start(cfg)  # a fresh run never replaces another run's checkpoints (locally or in the bucket)
    held: list[Any] = []
    try:
        return _train(cfg, notes, held)
    finally:
        for lease in held:
            lease.release()


def _train(cfg: DictConfig, notes: list[str], held: list[Any]) -> TrainSummary:
    if cfg.get("print_config", True):
        print_config_tree(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    machine = resolve_machine_settings(cfg)
    if cfg.trainer.get("deterministic"):
        torch.use_deterministic_algorithms(True, warn_only=True)

    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    datamodule = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg)
    ckpt = resolve_ckpt_path(cfg.get("ckpt_path"), run_identity(cfg), cfg.paths.checkpoint_dir, cfg.get("storage"))
    lease = acquire_lease(cfg, notes)  # one run per bucket prefix: a second one with this run_name stops here
    held.extend([lease] if lease is not None else [])
    loggers = build_loggers(cfg.get("logger"), _checkpoint_step(ckpt))
    callbacks = without_logger_only_callbacks(instantiate_each(cfg.get("callbacks")), loggers)
    callbacks.append(FitStartRecorder())  # where fit really started (after a checkpoint restore)
    callbacks.append(ThroughputCheck())  # loop vs step-only images/s: is the run as fast as this machine can be?
    trainer = build_trainer(cfg, callbacks, loggers, lease)
    sync = trainer.strategy.checkpoint_io
    if hasattr(sync, "take_baseline") and (cfg.get("ckpt_path") is not None or cfg.get("overwrite", False)):
        sync.take_baseline(ckpt)  # continuing (or replacing on purpose): what it may replace in the bucket

    summary = TrainSummary(run_dir=run_dir, machine=machine.record())
    summary.bucket_notes = list(notes)
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
        if trainer.interrupted:
            summary.status = "interrupted"
    except NonFiniteLossError:
        summary.status = "stopped: non-finite loss"
        raise
    except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C (Lightning exits 1) or SIGTERM (SIGTERMException)
        log.warning("training interrupted (%s) at step %d", type(exc).__name__, trainer.global_step)
        summary.status = "interrupted"
    finally:
        summary.wall_time_s = time.perf_counter() - start
        _fill_summary(summary, trainer, module, callbacks)
        _check_speed(summary, _find(callbacks, ThroughputCheck), machine, datamodule)
        if ckpt:
            summary.resumed_from = Path(ckpt)
            _locate_best_checkpoint(summary, cfg)
            if summary.status == "finished" and summary.start_step is not None and summary.steps == summary.start_step:
                summary.status = "already finished"  # max_epochs / max_time / early stopping: nothing left to do
            if summary.status == "finished" and summary.start_step is None and _nothing_trained(trainer, ckpt):
                summary.status = "already finished"
            if summary.status == "already finished":
                _fill_from_checkpoint(summary, ckpt, cfg)
        if _ranks_ran_in_children(trainer):  # ddp_spawn / ddp_fork: this process only launched them
            _recover_from_checkpoints(summary, trainer, Path(cfg.paths.checkpoint_dir))
    if cfg.get("test_after_fit") and summary.best_checkpoint:
        results = trainer.test(module, datamodule=datamodule, ckpt_path=str(summary.best_checkpoint))
        summary.metrics.update({k.replace("test/", "test_"): v for k, v in (results[0] if results else {}).items()})
    return summary


def _fill_summary(summary: TrainSummary, trainer: pl.Trainer, module: RTDETRModule, callbacks: list[Callback]) -> None:
    summary.epochs = trainer.current_epoch
    summary.precision = str(trainer.precision)
    summary.steps = trainer.global_step
    speed = _find(callbacks, TrainSpeedMonitor)
    # every rank trains on its own shard of each step's images at the same pace: total = per-rank x ranks
    summary.images_per_s = (speed.mean_images_per_s if speed else 0.0) * max(1, trainer.world_size)
    started = _find(callbacks, FitStartRecorder)
    if started is not None and started.step is not None:
        summary.start_epoch, summary.start_step = started.epoch, started.step
    for checkpoint in (c for c in callbacks if isinstance(c, ModelCheckpoint)):
        path = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
        if checkpoint.monitor:
            summary.best_checkpoint = path
        else:
            summary.last_checkpoint = path
    interrupt = _find(callbacks, InterruptCheckpoint)
    if interrupt is not None and interrupt.saved_path is not None:
        summary.last_checkpoint = interrupt.saved_path
    best_epoch = module.best_epoch_metrics(monitor="AP")
    summary.metrics = dict(best_epoch)
    tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
    summary.tensorboard_dir = Path(tb.log_dir) if tb is not None else None
    summary.unsynced = list(getattr(trainer.strategy.checkpoint_io, "unsynced", None) or [])
    summary.bucket_notes = [*summary.bucket_notes, *(getattr(trainer.strategy.checkpoint_io, "refused", None) or [])]


def _nothing_trained(trainer: pl.Trainer, ckpt: Path) -> bool:
    """True when fit resumed from ``ckpt`` and stopped without a step (its limits were already reached)."""
    return trainer.global_step == _checkpoint_step(ckpt)


def _fill_from_checkpoint(summary: TrainSummary, ckpt: Path, cfg: DictConfig) -> None:
    """A resumed run with nothing left to train: its figures are the checkpoint's (this process measured no
    speed, and the checkpoint paths it restored may name files of another machine)."""
    from neo.checkpoints.format import read_neo

    content = read_neo(ckpt, key=None, mmap=True, need_config=False).content
    summary.start_epoch = summary.start_epoch if summary.start_epoch is not None else int(content.get("epoch", 0))
    summary.start_step = summary.start_step if summary.start_step is not None else int(content.get("global_step", 0))
    summary.steps = int(content.get("global_step", summary.steps))
    history = content.get("neo_metrics_history") or []
    if not summary.metrics and history:
        summary.metrics = dict(max(history, key=lambda m: m.get("AP", -1.0)))
    summary.images_per_s = 0.0  # nothing was trained here: shown as "-"
    last = summary.last_checkpoint
    if last is None or not Path(last).is_file():
        summary.last_checkpoint = Path(ckpt)  # the file resumed from (the fetched copy of the bucket's)
    _locate_best_checkpoint(summary, cfg)


def _check_speed(summary: TrainSummary, check: ThroughputCheck | None, machine: MachineSettings,
                 datamodule: Any) -> None:
    """``summary.throughput`` (loop vs step-only images/s) and ``speed_notes``: why this run is slower than the
    machine can go, if it is (see :mod:`neo.training.speed_check`)."""
    from neo.cores import available_cores

    if check is None:
        return
    workers = int(getattr(datamodule, "loader_kwargs", {}).get("num_workers", 0))
    check.figures.notes = speed_notes(check.figures, precision_warning=machine.precision.warning,
                                      torch_threads=torch.get_num_threads(), num_workers=workers,
                                      cores=available_cores())
    summary.throughput = check.figures.record()
    summary.speed_notes = list(check.figures.notes)


def _locate_best_checkpoint(summary: TrainSummary, cfg: DictConfig) -> None:
    """After a resume the restored best path may name a file of another machine or a deleted folder: name
    where the best checkpoint really is (the fetched copy it was resumed from, else its bucket URL)."""
    best = summary.best_checkpoint
    if best is None or Path(best).is_file():
        return
    if summary.resumed_from is not None and summary.resumed_from.name == Path(best).name:
        summary.best_checkpoint = summary.resumed_from
        return
    storage = cfg.get("storage")
    if cfg.get("sync_checkpoints", True) and storage is not None and storage.get("bucket"):
        from neo.checkpoints.resume import storage_settings

        settings = storage_settings(storage)
        summary.best_checkpoint = settings.url(f"{settings.run_checkpoint_dir(run_identity(cfg))}/{Path(best).name}")
    else:
        summary.best_checkpoint = None  # gone, and no bucket copy: say nothing rather than a missing path


def _ranks_ran_in_children(trainer: pl.Trainer) -> bool:
    """True when a multiprocessing launcher (spawn/fork) ran fit in child processes."""
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    return isinstance(getattr(trainer.strategy, "launcher", None), _MultiProcessingLauncher)


def _recover_from_checkpoints(summary: TrainSummary, trainer: pl.Trainer, checkpoint_dir: Path) -> None:
    """Fill the figures of a run whose ranks trained in child processes (``ddp_spawn``/``ddp_fork``).

    Lightning hands the parent only the best checkpoint path, the final weights and the last logged
    metrics; epochs, steps and the validation history come from the newest checkpoint of the run (the
    last logged val metrics when there is none).
    """
    from neo.checkpoints.format import read_neo
    from neo.checkpoints.resume import newest_local_checkpoint

    logged = {k[len("val/"):]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    path = newest_local_checkpoint(checkpoint_dir)
    if path is None:  # no checkpoints (debug=fast): the last validation is all there is
        summary.metrics = logged
        return
    checkpoint = read_neo(path, key=None, mmap=True, need_config=False).content
    summary.epochs = int(checkpoint.get("epoch", 0)) + 1
    summary.steps = int(checkpoint.get("global_step", 0))
    history = checkpoint.get("neo_metrics_history") or []
    summary.metrics = dict(max(history, key=lambda m: m.get("AP", -1.0), default={}))
    summary.last_checkpoint = summary.last_checkpoint or path
    images_per_s = trainer.callback_metrics.get("train/epoch_images_per_s")
    if images_per_s is not None:
        summary.images_per_s = float(images_per_s) * max(1, trainer.world_size)
