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
from omegaconf import DictConfig, OmegaConf

from neo.training.callbacks import InterruptCheckpoint, TrainSpeedMonitor
from neo.training.checkpoints import resolve_ckpt_path, resolve_identifier
from neo.training.config_check import check_config
from neo.training.module import NonFiniteLossError, RTDETRModule
from neo.training.report import TrainSummary, print_config_tree

log = logging.getLogger(__name__)

# Keys in cfg.model that hold a weights identifier to resolve through neo.storage before instantiation.
PRETRAINED_KEYS = ("net.backbone_weights", "net.pretrained", "net.backbone.pretrained", "net.backbone.weights")


def plain(cfg: Any) -> Any:
    """Resolved plain containers (dict/list/str/int/float/bool/None) of a config node."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def instantiate_each(node: DictConfig | None) -> list[Any]:
    """Instantiate every non-null child of a keyed node (``callbacks``, ``logger``)."""
    if node is None:
        return []
    return [instantiate(child) for _, child in node.items() if child is not None and "_target_" in child]


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
    """The LightningModule of a run config (pretrained identifiers resolved to local files)."""
    model_cfg = resolve_pretrained(plain(cfg.model), cfg.get("storage"))
    run_config = plain(cfg)
    module = RTDETRModule(
        model=model_cfg,
        optim=plain(cfg.optim),
        channels_last=bool(cfg.get("channels_last", False)),
        run_config=run_config,
    )
    if cfg.get("pretrained"):
        load_detector_weights(module, str(cfg.pretrained), cfg.get("storage"))
    return module


def load_detector_weights(module: RTDETRModule, identifier: str, storage_cfg: Any) -> None:
    """Initialise the whole detector from a neo checkpoint (EMA weights) or an official RT-DETR checkpoint.

    Class-dependent heads whose shape differs (another class count) keep their fresh initialisation;
    the report of what was loaded, renamed, dropped and re-initialised is logged.
    """
    from neo.models.rtdetr.convert import load_converted, load_official

    path = resolve_identifier(identifier, storage_cfg)
    checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if isinstance(state, dict) and state and all(k.startswith(("net.", "criterion.", "postprocessor.")) for k in state):
        net_state = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
        report = load_converted(module.net, net_state)
    else:
        report = load_official(module.net, checkpoint)
    log.info("pretrained=%s (%s):\n%s", identifier, path, report.summary())


def checkpoint_plugins(cfg: DictConfig) -> list[Any]:
    """``neo.storage.CheckpointSync`` (background push of checkpoints to the bucket) when a bucket is set."""
    if not cfg.get("sync_checkpoints", True) or cfg.get("storage") is None or not cfg.storage.get("bucket"):
        return []
    from neo.storage import CheckpointSync
    from neo.training.checkpoints import storage_settings

    return [CheckpointSync(storage_settings(cfg.storage), str(cfg.run_name))]


def without_logger_only_callbacks(callbacks: list[Callback], loggers: list[Logger]) -> list[Callback]:
    """Drop callbacks that only write to a logger (``LearningRateMonitor``) when ``logger=none``."""
    if loggers:
        return callbacks
    return [c for c in callbacks if not isinstance(c, LearningRateMonitor)]


def build_trainer(cfg: DictConfig, callbacks: list[Callback], loggers: list[Logger]) -> pl.Trainer:
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=checkpoint_plugins(cfg),
                       _convert_="all")


def _find(callbacks: list[Callback], kind: type) -> Any:
    return next((c for c in callbacks if isinstance(c, kind)), None)


def train(cfg: DictConfig) -> TrainSummary:
    """Check the config, build everything, fit, and return the run's figures.

    Raises :class:`neo.training.config_check.ConfigError` on invalid values (before anything is built)
    and :class:`NonFiniteLossError` when the loss stops being finite (after saving the last good state).
    """
    check_config(cfg)
    if cfg.get("print_config", True):
        print_config_tree(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if cfg.trainer.get("deterministic"):
        torch.use_deterministic_algorithms(True, warn_only=True)

    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    datamodule = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg)
    loggers = instantiate_each(cfg.get("logger"))
    callbacks = without_logger_only_callbacks(instantiate_each(cfg.get("callbacks")), loggers)
    trainer = build_trainer(cfg, callbacks, loggers)
    ckpt = resolve_ckpt_path(cfg.get("ckpt_path"), str(cfg.run_name), cfg.paths.checkpoint_dir, cfg.get("storage"))

    summary = TrainSummary(run_dir=run_dir)
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
    if cfg.get("test_after_fit") and summary.best_checkpoint:
        results = trainer.test(module, datamodule=datamodule, ckpt_path=str(summary.best_checkpoint))
        summary.metrics.update({k.replace("test/", "test_"): v for k, v in (results[0] if results else {}).items()})
    return summary


def _fill_summary(summary: TrainSummary, trainer: pl.Trainer, module: RTDETRModule, callbacks: list[Callback]) -> None:
    summary.epochs = trainer.current_epoch
    summary.steps = trainer.global_step
    speed = _find(callbacks, TrainSpeedMonitor)
    summary.images_per_s = speed.mean_images_per_s if speed else 0.0
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
