"""Evaluate a checkpoint on a COCO split through Lightning (``neo-eval``): metrics and detections JSON.

The metrics say at which precision they were measured (``precision=``, Lightning's names: ``32-true``,
``bf16-mixed``, ``16-mixed``) and at which the run validated during training: AP differs between them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from neo.checkpoints.load import load_checkpoint_module
from neo.checkpoints.resume import resolve_identifier
from neo.config_problems import UserError, problem


class OptionError(UserError, ValueError):
    """An option of neo-eval that cannot be used as given; the message names it and the fix."""


def data_config(cfg: DictConfig, run_config: dict[str, Any], checkpoint: str | Path = "") -> dict[str, Any]:
    """``cfg.data`` when given on the command line, else the checkpoint's own data config (its ``${paths.*}``
    resolved with this command's ``paths``: an imported COCO checkpoint finds ``<paths.data_dir>/coco``)."""
    if cfg.get("data") is not None:
        data = OmegaConf.to_container(cfg.data, resolve=True)
    else:
        data = dict(run_config.get("data") or {})
        if not data or "_target_" not in data:
            raise OptionError(problem("checkpoint", str(checkpoint), "carries no dataset config (it holds the model only)",
                                      "name the dataset: data=<preset> (e.g. data=coco data.root=/data/coco)"))
        tree = OmegaConf.create({"paths": OmegaConf.to_container(cfg.paths, resolve=True), "data": data})
        data = OmegaConf.to_container(tree.data, resolve=True)
    if cfg.get("batch_size"):
        data["eval_batch_size"] = int(cfg.batch_size)
    if cfg.get("num_workers") is not None:
        data["num_workers"] = int(cfg.num_workers)
    return data


def training_precision(run_config: dict[str, Any]) -> str | None:
    """The Lightning precision the run validated at (``trainer.precision`` of its config), None if unknown."""
    value = (run_config.get("trainer") or {}).get("precision")
    return None if value is None else str(value)


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """Run COCO evaluation; returns {"metrics", "metrics_file", "detections_file", "class_results", "checkpoint",
    "precision", "training_precision", ...}.

    ``output_dir`` receives metrics.json, detections.json and the per-class results (per_class.csv/.json,
    pr_curves.png, confusion_matrix.png/.json; see :mod:`neo.evaluation.results`).
    """
    from neo.evaluation.outputs import write_detections, write_metrics
    from neo.evaluation.results import evaluation_results, write_evaluation_results

    if cfg.split not in ("val", "test"):
        raise OptionError(problem("split", cfg.split, "is unknown", "use split=val or split=test"))
    path = resolve_identifier(str(cfg.checkpoint), cfg.get("storage"), key="checkpoint")
    module = load_checkpoint_module(path, weights=str(cfg.weights), value=cfg.checkpoint)
    run_config = module.hparams.get("run_config") or {}
    module.eval_images = str(cfg.images)
    module.eval_backend = str(cfg.backend)
    module.val_samples = 0
    datamodule = instantiate(data_config(cfg, run_config, cfg.checkpoint), _convert_="all")
    trainer = pl.Trainer(accelerator=cfg.accelerator, devices=1, precision=cfg.precision, logger=False,
                         enable_checkpointing=False, callbacks=[], enable_model_summary=False)
    if cfg.split == "val":
        trainer.validate(module, datamodule=datamodule, verbose=False)
    else:
        trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = module.last_metrics
    out = Path(cfg.output_dir)
    annotation = datamodule.val_annotation_file if cfg.split == "val" else datamodule.test_annotation_file
    context = {"checkpoint": str(path), "weights": module.loaded_weights, "split": str(cfg.split),
               "annotation_file": str(annotation), "backend": str(cfg.backend), "images": str(cfg.images),
               "epoch": module.checkpoint_epoch, "global_step": module.checkpoint_step,
               "precision": str(trainer.precision), "training_precision": training_precision(run_config)}
    metrics_file = write_metrics(out / "metrics.json", metrics, **context)
    detections_file = write_detections(out / "detections.json", module.evaluator.detections())
    class_rows, images = [], 0
    cocoeval = module.evaluator.last_cocoeval
    if cocoeval is not None:  # per-class table, PR curves and confusion matrix beside metrics.json
        results = evaluation_results(cocoeval, float(cfg.get("score_threshold", 0.3)))
        write_evaluation_results(results, out, **context)
        class_rows, images = results.rows, len(cocoeval.params.imgIds)
    return {"metrics": metrics, "metrics_file": metrics_file, "detections_file": detections_file,
            "class_results": class_rows, "images_evaluated": images, "output_dir": out, **context}
