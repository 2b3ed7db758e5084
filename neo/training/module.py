"""RTDETRModule: the LightningModule that trains and validates an RT-DETR built from ``cfg.model``.

Batches follow the data contract: ``images`` uint8 [B, 3, H, W] and ``targets`` a list of B dicts
(labels [N], boxes [N, 4] normalised cxcywh, image_id, orig_size (h, w), letterbox (sx, sy, px, py)).
Every constructor argument is a plain container, so checkpoints load with ``weights_only=True`` and
``RTDETRModule.load_from_checkpoint(path)`` rebuilds the model without Hydra.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from hydra.utils import instantiate

from neo.checkpoints.pretrained import build_net
from neo.training.optim import build_adamw
from neo.training.schedule import build_scheduler, schedule_from_config

METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN/inf; carries where it happened for the message and the CLI."""

    def __init__(self, global_step: int, epoch: int, batch_idx: int, terms: list[str]):
        self.global_step, self.epoch, self.batch_idx, self.terms = global_step, epoch, batch_idx, terms
        super().__init__(
            f"non-finite training loss at optimizer step {global_step} (epoch {epoch}, batch {batch_idx}); "
            f"non-finite terms: {', '.join(terms) or 'total'}. Lower optim.lr, raise optim.schedule.warmup, "
            "keep trainer.gradient_clip_val (0.1), or use precision=32-true / bf16-mixed instead of 16-mixed."
        )


class RTDETRModule(pl.LightningModule):
    """RT-DETR training/validation/prediction.

    Args:
        model: ``cfg.model`` as a plain dict with instantiable ``net``, ``criterion``, ``postprocessor``.
        optim: ``cfg.optim`` as a plain dict (see :mod:`neo.training.optim` / :mod:`neo.training.schedule`).
        channels_last: run the network in channels-last memory format (a CPU and GPU speed lever).
        class_names: category names by contiguous label (filled from the DataModule when None).
        label_to_category_id: original COCO category id by contiguous label (idem).
        run_config: the whole resolved run config (plain dict), kept for ``neo-eval``/``neo-predict``.
        val_samples: how many images of the first validation batch to keep for the image grid.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        optim: Mapping[str, Any],
        channels_last: bool = False,
        class_names: list[str] | None = None,
        label_to_category_id: list[int] | None = None,
        run_config: Mapping[str, Any] | None = None,
        val_samples: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_net(model["net"])  # reads model.net.backbone.pretrained of a PResNet
        self.criterion = instantiate(model["criterion"], _convert_="all")
        self.postprocessor = instantiate(model["postprocessor"], _convert_="all")
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.evaluator = None  # set per validation/test epoch from the DataModule's annotation file
        self.val_samples = val_samples
        self.val_sample_batch: tuple[torch.Tensor, list[dict], list[dict]] | None = None
        self.metrics_history: list[dict[str, float]] = []  # one entry per validation: epoch, step, metrics
        self.last_metrics: dict[str, float] = {}
        self._evaluators: dict[str, Any] = {}
        self.eval_images = "seen"  # CocoEvaluator scope: "seen" (validation subsets) or "all" (neo-eval)
        self.eval_backend = "faster"  # faster-coco-eval (same numbers as pycocotools, ~10x faster)

    # ---------------------------------------------------------------- setup
    def setup(self, stage: str) -> None:
        """Record the DataModule's label maps in the hyper-parameters (so checkpoints carry them)."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            return
        if self.hparams.get("class_names") is None and hasattr(dm, "class_names"):
            self.hparams["class_names"] = [str(n) for n in dm.class_names]
        if self.hparams.get("label_to_category_id") is None and hasattr(dm, "label_to_category_id"):
            self.hparams["label_to_category_id"] = [int(i) for i in dm.label_to_category_id]

    # ---------------------------------------------------------------- forward
    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None) -> dict[str, Any]:
        """images: uint8 [B, 3, H, W] -> raw network outputs (``pred_logits`` [B, Q, C], ``pred_boxes`` [B, Q, 4])."""
        return self.net(self._prepare(images), targets)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, targets: list[dict]) -> list[dict[str, torch.Tensor]]:
        """Detections per image in ORIGINAL pixels: scores [K], labels [K] (contiguous), boxes [K, 4] xyxy."""
        return self.postprocessor(self(images), targets)

    # ---------------------------------------------------------------- training
    def training_step(self, batch: tuple[torch.Tensor, list[dict]], batch_idx: int) -> torch.Tensor:
        images, targets = batch
        outputs = self(images, targets)
        with torch.autocast(device_type=self.device.type, enabled=False):
            losses = self.criterion(outputs, targets)  # fp32: the criterion also disables autocast itself
        loss = torch.stack([v.float() for v in losses.values()]).sum()
        # The step's one read of a loss on the host: it serves the non-finite check (which must stop the run
        # before the optimizer steps) and the progress bar, which Lightning reads every batch: logged as a host
        # tensor, it costs no further wait for the device. The terms stay on the device (read only when the
        # logger writes, every trainer.log_every_n_steps).
        host_loss, finite = self._read_loss(loss)
        self._check_finite(finite, losses, batch_idx)
        batch_size = images.shape[0]
        self.log("train/loss", host_loss, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=batch_size)
        return loss

    def _read_loss(self, loss: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """(the total loss as a host tensor, whether it is finite on every rank) in one device -> host copy.

        Under DDP the ranks agree on the device first (an all-reduce of the finiteness, MIN), so stopping
        together costs no second wait.
        """
        loss = loss.detach()
        if self.trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            finite = torch.isfinite(loss).to(loss.dtype)
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
            host = torch.stack([loss, finite]).cpu()
            return host[0], float(host[1]) > 0
        host = loss.cpu()
        return host, math.isfinite(float(host))

    def _check_finite(self, finite: bool, losses: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        """Stop the run (all ranks together: ``finite`` is every rank's answer) when the loss is NaN/inf."""
        if not finite:
            bad = [k for k, v in losses.items() if not bool(torch.isfinite(v).all())]
            raise NonFiniteLossError(self.global_step, self.current_epoch, batch_idx, bad)

    # ---------------------------------------------------------------- validation / test
    def _make_evaluator(self, stage: str):
        """One CocoEvaluator per stage, reset at each epoch start. It learns the valid image ids from the
        dataset (read from its annotation index), so the ground truth JSON is parsed once, lazily, and only
        on the rank that computes the metrics."""
        if stage not in self._evaluators:
            from neo.evaluation.coco import CocoEvaluator

            dm = self.trainer.datamodule
            ann = dm.test_annotation_file if stage == "test" else dm.val_annotation_file
            ids = self.hparams.get("label_to_category_id") or list(dm.label_to_category_id)
            dataset = getattr(dm, "datasets", {}).get("test" if stage == "test" else "val")
            known = dataset.ids.tolist() if dataset is not None else None
            self._evaluators[stage] = CocoEvaluator(ann, ids, backend=self.eval_backend, images=self.eval_images,
                                                    known_image_ids=known)
        evaluator = self._evaluators[stage]
        evaluator.reset()
        return evaluator

    def on_validation_epoch_start(self) -> None:
        self.evaluator = self._make_evaluator("val")
        self.val_sample_batch = None

    def on_test_epoch_start(self) -> None:
        self.evaluator = self._make_evaluator("test")

    def _eval_step(self, batch: tuple[torch.Tensor, list[dict]], batch_idx: int) -> None:
        images, targets = batch
        outputs = self(images)
        preds = self.postprocessor(outputs, targets)
        self._log_eval_loss(outputs, targets)
        self.evaluator.update([{k: v.detach().cpu() for k, v in p.items()} for p in preds],
                              [int(t["image_id"]) for t in targets])
        if batch_idx == 0 and self.val_samples > 0:
            n = min(self.val_samples, images.shape[0])
            self.val_sample_batch = (
                images[:n].detach().cpu(),
                [{k: v.detach().cpu() for k, v in p.items()} for p in preds[:n]],
                [{k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in t.items()} for t in targets[:n]],
            )

    @torch.no_grad()
    def _log_eval_loss(self, outputs: dict[str, Any], targets: list[dict]) -> None:
        """``val/loss`` (or ``test/loss``): the criterion on the final decoder layer, per-epoch mean.

        In eval mode the network returns only the last layer (no auxiliary, encoder or denoising outputs),
        so this is the sum of its weighted VFL, L1 and GIoU terms, not the training loss's 20-odd terms.
        """
        stage = "test" if self.trainer.testing else "val"
        if self.trainer.sanity_checking or not all("boxes" in t and "labels" in t for t in targets):
            return
        with torch.autocast(device_type=self.device.type, enabled=False):
            losses = self.criterion(outputs, targets)
        loss = torch.stack([v.float() for v in losses.values()]).sum()
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=len(targets), sync_dist=True)

    def validation_step(self, batch: tuple[torch.Tensor, list[dict]], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx)

    def test_step(self, batch: tuple[torch.Tensor, list[dict]], batch_idx: int) -> None:
        self._eval_step(batch, batch_idx)

    def _log_metrics(self, prefix: str) -> dict[str, float]:
        metrics = self.evaluator.compute() if self.evaluator is not None else {}
        clean = {k: (v if math.isfinite(v) and v >= 0 else 0.0) for k, v in metrics.items() if k in METRIC_KEYS}
        for key, value in clean.items():  # computed once on rank 0 and broadcast: the mean over ranks is exact
            self.log(f"{prefix}/{key}", float(value), prog_bar=key in ("AP", "AP50"), sync_dist=True)
        self.last_metrics = {k: float(v) for k, v in clean.items()}
        return self.last_metrics

    def on_validation_epoch_end(self) -> None:
        metrics = self._log_metrics("val")
        if not self.trainer.sanity_checking and metrics:
            self.metrics_history.append({"epoch": self.current_epoch, "step": self.global_step, **metrics})

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def best_epoch_metrics(self, monitor: str = "AP") -> dict[str, float]:
        """Metrics of the validation with the highest ``monitor`` (empty before any validation)."""
        return max(self.metrics_history, key=lambda m: m.get(monitor, -1.0), default={})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["neo_metrics_history"] = list(self.metrics_history)
        checkpoint["neo_rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another model (one paragraph naming the mismatched keys), then restore
        validation history and RNG states (denoising noise), so a resumed run continues exactly."""
        from neo.checkpoints.resume import check_state_dict_fits

        path = self._trainer.ckpt_path if self._trainer is not None else None
        check_state_dict_fits(self.state_dict(), checkpoint, path, (self.hparams.get("model") or {}).get("name"))
        self.metrics_history = list(checkpoint.get("neo_metrics_history", []))
        if "neo_rng_states" in checkpoint:
            set_rng_states(checkpoint["neo_rng_states"])

    # ---------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        optim_cfg = self.hparams["optim"]
        optimizer = build_adamw(self.net, optim_cfg, device_type=self.device.type,
                                precision=str(self.trainer.precision), gradient_clip_val=self.trainer.gradient_clip_val)
        total = int(self.trainer.estimated_stepping_batches)
        max_epochs = self.trainer.max_epochs or 0
        steps_per_epoch = max(1, total // max_epochs) if max_epochs > 0 else total
        schedule = schedule_from_config(optim_cfg.get("schedule", {}), steps_per_epoch, total)
        scheduler = build_scheduler(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}


def rng_states() -> dict[str, Any]:
    """torch (CPU + CUDA), numpy and python RNG states as tensors and plain values (weights_only-safe)."""
    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *[int(v) if i < 2 else float(v)
                                                                                  for i, v in enumerate(np_state[2:])]],
        "python": _plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Inverse of :func:`rng_states`."""
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    random.setstate(_tuples(states["python"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
