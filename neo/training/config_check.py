"""Check a composed run config before anything heavy starts; bad values get a one-paragraph error.

Each rule reads a few keys and returns an error message (key, value, fix) or None. ``check_config``
runs every rule and raises :class:`ConfigError` listing all failures, so one run reports every
mistake at once. Add a rule by writing a function and appending it to ``RULES``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", "transformer-engine")
SCHEDULES = ("multistep", "cosine", "flat_cosine", "constant")
_MISSING = object()


class ConfigError(ValueError):
    """One or more config values are invalid; the message names each key, its value and the fix."""


def _get(cfg: DictConfig, key: str, default: Any = _MISSING) -> Any:
    value = OmegaConf.select(cfg, key, default=default, throw_on_missing=False)
    return value


def _msg(key: str, value: Any, problem: str, fix: str) -> str:
    return f"{key}={value!r} {problem}. Fix: {fix}."


def _number(cfg: DictConfig, key: str) -> float | None:
    value = _get(cfg, key, None)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------ optimiser
def check_lr(cfg):
    lr = _get(cfg, "optim.lr", None)
    if not isinstance(lr, (int, float)) or lr <= 0 or lr > 1:
        return _msg("optim.lr", lr, "must be a number in (0, 1]", "use e.g. optim.lr=1e-4 (RT-DETR) or 2e-4")


def check_weight_decay(cfg):
    wd = _get(cfg, "optim.weight_decay", 0.0)
    if not isinstance(wd, (int, float)) or wd < 0:
        return _msg("optim.weight_decay", wd, "must be >= 0", "use e.g. optim.weight_decay=1e-4")


def check_backbone_lr(cfg):
    absolute, mult = _get(cfg, "optim.backbone_lr", None), _get(cfg, "optim.backbone_lr_mult", 0.1)
    if absolute is not None and (not isinstance(absolute, (int, float)) or absolute < 0):
        return _msg("optim.backbone_lr", absolute, "must be >= 0 or null",
                    "set an absolute lr such as 1e-5, or null to use optim.backbone_lr_mult")
    if not isinstance(mult, (int, float)) or mult < 0:
        return _msg("optim.backbone_lr_mult", mult, "must be >= 0", "use e.g. 0.1 (0 freezes the backbone's lr)")


def check_betas(cfg):
    betas = _get(cfg, "optim.betas", [0.9, 0.999])
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        return _msg("optim.betas", list(betas), "must be two numbers in [0, 1)", "use [0.9, 0.999]")


def check_schedule_name(cfg):
    name = _get(cfg, "optim.schedule.name", "multistep")
    if name not in SCHEDULES:
        return _msg("optim.schedule.name", name, "is not a schedule", f"choose one of {', '.join(SCHEDULES)}")


def check_warmup(cfg):
    warmup, unit = _get(cfg, "optim.schedule.warmup", 0), _get(cfg, "optim.schedule.warmup_unit", "step")
    if unit not in ("step", "epoch"):
        return _msg("optim.schedule.warmup_unit", unit, "is not a unit", "use 'step' or 'epoch'")
    if not isinstance(warmup, (int, float)) or warmup < 0:
        return _msg("optim.schedule.warmup", warmup, "must be >= 0", "use e.g. 2000 (steps) or 5 (epochs)")


def check_milestones(cfg):
    ms = list(_get(cfg, "optim.schedule.milestones", []) or [])
    unit = _get(cfg, "optim.schedule.milestone_unit", "epoch")
    if unit not in ("step", "epoch"):
        return _msg("optim.schedule.milestone_unit", unit, "is not a unit", "use 'step' or 'epoch'")
    if any(not isinstance(m, (int, float)) or m <= 0 for m in ms) or ms != sorted(ms):
        return _msg("optim.schedule.milestones", ms, "must be positive and increasing", "use e.g. [40, 55]")
    max_epochs = _get(cfg, "trainer.max_epochs", None)
    if unit == "epoch" and ms and isinstance(max_epochs, int) and max_epochs > 0 and ms[-1] > max_epochs:
        return _msg("optim.schedule.milestones", ms, f"go past trainer.max_epochs={max_epochs}, so they never fire",
                    "lower the milestones or raise trainer.max_epochs")


def check_gamma(cfg):
    gamma = _get(cfg, "optim.schedule.gamma", 0.1)
    if not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        return _msg("optim.schedule.gamma", gamma, "must be in (0, 1]", "use 0.1")


def check_min_lr_ratio(cfg):
    ratio = _get(cfg, "optim.schedule.min_lr_ratio", 0.05)
    if not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
        return _msg("optim.schedule.min_lr_ratio", ratio, "must be in [0, 1]", "use e.g. 0.05")


# ------------------------------------------------------------------ trainer
def check_precision(cfg):
    precision = str(_get(cfg, "trainer.precision", "32-true"))
    if precision not in PRECISIONS:
        return _msg("trainer.precision", precision, "is not a Lightning precision",
                    "use 32-true, 16-mixed (fp16 AMP on GPU) or bf16-mixed (GPU, or a CPU with AVX512-BF16)")
    if precision.startswith("16") and _get(cfg, "trainer.accelerator", "auto") == "cpu":
        return _msg("trainer.precision", precision, "is fp16, which CPUs run slowly or not at all",
                    "on CPU use precision=bf16-mixed or 32-true; 16-mixed is for trainer=gpu")


def check_accumulate(cfg):
    acc = _get(cfg, "trainer.accumulate_grad_batches", 1)
    if not isinstance(acc, int) or acc < 1:
        return _msg("trainer.accumulate_grad_batches", acc, "must be an integer >= 1",
                    "use 1 for no accumulation, or N to step the optimizer every N batches")


def check_epochs(cfg):
    epochs, steps = _get(cfg, "trainer.max_epochs", None), _get(cfg, "trainer.max_steps", -1)
    if epochs is None and (steps is None or steps < 1):
        return _msg("trainer.max_epochs", epochs, "is unset and trainer.max_steps is not positive",
                    "set trainer.max_epochs=N (or trainer.max_steps=N)")
    if epochs is not None and (not isinstance(epochs, int) or (epochs < 1 and epochs != -1)):
        return _msg("trainer.max_epochs", epochs, "must be an integer >= 1 (or -1 with trainer.max_steps)",
                    "use e.g. trainer.max_epochs=72")


def check_clip(cfg):
    clip = _get(cfg, "trainer.gradient_clip_val", None)
    algo = _get(cfg, "trainer.gradient_clip_algorithm", "norm")
    if clip is not None and (not isinstance(clip, (int, float)) or clip < 0):
        return _msg("trainer.gradient_clip_val", clip, "must be >= 0 or null", "use 0.1 (RT-DETR) or null")
    if algo not in ("norm", "value"):
        return _msg("trainer.gradient_clip_algorithm", algo, "is unknown", "use 'norm' (RT-DETR) or 'value'")


def check_val_cadence(cfg):
    every = _get(cfg, "trainer.check_val_every_n_epoch", 1)
    if every is not None and (not isinstance(every, int) or every < 1):
        return _msg("trainer.check_val_every_n_epoch", every, "must be an integer >= 1 or null",
                    "use 1 to validate every epoch, N for every N epochs")


def check_accelerator(cfg):
    acc = _get(cfg, "trainer.accelerator", "auto")
    if acc in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            return _msg("trainer.accelerator", acc, "asks for a GPU but torch sees none",
                        "use trainer=cpu on this machine (or check CUDA_VISIBLE_DEVICES / the driver)")


def check_ddp_multirun(cfg):
    """-m with a DDP strategy that re-runs the command (the rule lives in neo.training.launch_check)."""
    from neo.sweeps.job import current_job
    from neo.training.launch_check import LaunchError, check_multirun_launch

    if current_job().multirun:
        try:
            check_multirun_launch(cfg)
        except LaunchError as exc:
            return str(exc)


# ------------------------------------------------------------------ data
def check_batch_size(cfg):
    for key in ("data.batch_size", "data.eval_batch_size"):
        bs = _get(cfg, key, None)
        if (key == "data.batch_size" or bs is not None) and (not isinstance(bs, int) or bs < 1):
            return _msg(key, bs, "must be an integer >= 1", f"use e.g. {key}=4")


def check_train_scales(cfg):
    scales = _get(cfg, "data.train_scales", None)
    if scales is not None and any(not isinstance(s, (int, float)) or s <= 0 for s in scales):
        return _msg("data.train_scales", list(scales), "must be positive numbers",
                    "use e.g. [0.75, 0.875, 1.0, 1.125, 1.25] (multiples of data.resolution)")


def check_no_aug_epochs(cfg):
    n, epochs = _get(cfg, "data.no_aug_epochs", 0), _get(cfg, "trainer.max_epochs", None)
    if not isinstance(n, int) or n < 0:
        return _msg("data.no_aug_epochs", n, "must be an integer >= 0", "use e.g. 2 (0 keeps heavy augmentation on)")
    if isinstance(epochs, int) and epochs > 0 and n > epochs:
        return _msg("data.no_aug_epochs", n, f"exceeds trainer.max_epochs={epochs}, so heavy augmentation never runs",
                    "lower data.no_aug_epochs")


def check_workers(cfg):
    workers = _get(cfg, "data.num_workers", None)
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        return _msg("data.num_workers", workers, "must be an integer >= 0",
                    f"use 0 (main process) up to the CPU count ({os.cpu_count()})")


def check_sizes_16x9(cfg):
    from neo.data.sizes import check_16x9

    errors = []
    for key in ("data.resolution", "data.eval_size"):
        value = _get(cfg, key, None)
        if value is not None:
            try:
                check_16x9(value, key=key)
            except ValueError as exc:
                errors.append(str(exc))
    for key in ("data.train_sizes",):
        values = _get(cfg, key, None)
        for i, value in enumerate(values or []):
            try:
                check_16x9(value, key=f"{key}[{i}]")
            except ValueError as exc:
                errors.append(str(exc))
    return " ".join(errors) or None


def check_dataset_paths(cfg):
    if _get(cfg, "data.synthetic", None):
        return None  # generated on first use (NeoDataModule.prepare_data)
    for key in ("data.train_annotations", "data.val_annotations", "data.train_images", "data.val_images",
                "data.test_annotations", "data.test_images"):
        value = _get(cfg, key, None)
        if isinstance(value, str) and value and "://" not in value and not Path(value).exists():
            return _msg(key, value, "does not exist",
                        "point it at your COCO-format dataset (see neo-data download coco / neo-data synth) "
                        "or pass data.root=/path/to/dataset")


def check_num_classes(cfg):
    model_nc, data_nc = _get(cfg, "model.net.num_classes", None), _get(cfg, "data.num_classes", None)
    if isinstance(data_nc, int) and data_nc < 1:
        return _msg("data.num_classes", data_nc, "must be >= 1", "set it to the number of categories in the dataset")
    if isinstance(model_nc, int) and isinstance(data_nc, int) and model_nc != data_nc:
        return _msg("model.net.num_classes", model_nc, f"differs from data.num_classes={data_nc}",
                    "leave model.net.num_classes=${data.num_classes}")


def check_on_bad_image(cfg):
    value = _get(cfg, "data.on_bad_image", "error")
    if value not in ("skip", "error"):
        return _msg("data.on_bad_image", value, "is not a policy",
                    "use 'skip' (warn and serve the next image) or 'error' (stop, naming the file)")


def check_min_box_size(cfg):
    value = _get(cfg, "data.min_box_size", 1.0)
    if not isinstance(value, (int, float)) or value < 0:
        return _msg("data.min_box_size", value, "must be a number >= 0 (pixels)",
                    "use 1.0 (boxes thinner than 1 px are dropped)")


# ------------------------------------------------------------------ storage
BUCKET_SCHEMES = ("r2", "b2", "s3", "file")


def check_storage_choice(cfg):
    """``storage`` is an optional group: Hydra silently drops an option that does not exist (storage=gcs)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get("storage") if HydraConfig.initialized() else None
    except Exception:  # noqa: BLE001 - outside a Hydra app
        return None
    if choice in (None, "null") or _get(cfg, "storage", None) is not None:
        return None
    from importlib.resources import files

    options = sorted(p.name.removesuffix(".yaml") for p in (files("conf") / "storage").iterdir()
                     if p.name.endswith(".yaml"))
    return _msg("storage", choice, "is not a storage option, so the run would have no bucket",
                f"use one of {', '.join(options)} (then storage.bucket=r2://<name> etc.)")


def check_storage(cfg):
    storage = _get(cfg, "storage", None)
    if storage is None:
        return None
    from neo.storage.settings import _SECRET_OPTIONS, StorageSettings

    errors = []
    unknown = sorted(set(storage) - set(StorageSettings.__dataclass_fields__))
    if unknown:
        errors.append(f"storage has unknown key(s) {unknown}. Fix: remove them; valid keys are "
                      f"{sorted(StorageSettings.__dataclass_fields__)}.")
    bucket = storage.get("bucket")
    if bucket is not None and not isinstance(bucket, str):
        errors.append(_msg("storage.bucket", bucket, "is not a URL or folder", "use e.g. r2://my-bucket or a folder"))
    elif bucket and "://" in bucket and bucket.split("://", 1)[0] not in BUCKET_SCHEMES:
        errors.append(_msg("storage.bucket", bucket, f"uses an unknown storage scheme {bucket.split('://', 1)[0]!r}",
                           "use r2://<bucket> (storage=r2), b2://<bucket> (storage=b2), s3://<bucket> (storage=s3), "
                           "file:///dir or a local folder"))
    for key, low, example in (("retries", 0, 3), ("backoff_s", 0, 0.5), ("drain_timeout_s", 0, 120),
                              ("lock_timeout_s", 1e-9, 900), ("upload_timeout_s", 1e-9, 600)):
        value = storage.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < low):
            errors.append(_msg(f"storage.{key}", value, f"must be a number {'>' if low else '>='} 0",
                               f"use e.g. storage.{key}={example}"))
    options = storage.get("storage_options") or {}
    secret = sorted(k for k in options if str(k).lower() in _SECRET_OPTIONS)
    if secret:  # never echo the value of a secret
        errors.append(f"storage.storage_options holds secret option(s) {secret} (values not shown). Fix: remove them "
                      f"and set credentials in the environment (R2_ACCESS_KEY_ID/R2_SECRET_ACCESS_KEY, "
                      f"B2_APPLICATION_KEY_ID/B2_APPLICATION_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).")
    if not errors:  # the one bucket parser: provider-aware names, URL shape, credentials in URLs
        from neo.storage.errors import StorageConfigError

        try:
            StorageSettings.from_config(storage)
        except StorageConfigError as exc:
            errors.append(str(exc))
    return " ".join(errors) or None


# ------------------------------------------------------------------ run
def check_run_name(cfg):
    name = str(_get(cfg, "run_name", "default"))
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return _msg("run_name", name, "is not a folder name", "use letters, digits, '-', '_' or '.' (no slashes)")


def check_seed(cfg):
    seed = _get(cfg, "seed", 0)
    if seed is not None and (not isinstance(seed, int) or not 0 <= seed < 2**32):
        return _msg("seed", seed, "must be an integer in [0, 2**32)", "use e.g. seed=42")


def check_torch_threads(cfg):
    threads = _get(cfg, "torch_threads", None)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        return _msg("torch_threads", threads, "must be an integer >= 1 or null",
                    f"use null (all {os.cpu_count()} cores) or e.g. torch_threads=1")


def check_ckpt_path(cfg):
    ckpt = _get(cfg, "ckpt_path", None)
    if ckpt is None or ckpt in ("auto", "last", "best"):
        return None
    ckpt = str(ckpt)
    looks_local = ckpt.startswith(("/", "./", "../", "~")) or os.sep in ckpt and "://" not in ckpt
    if looks_local and not Path(ckpt).expanduser().exists():
        return _msg("ckpt_path", ckpt, "does not exist",
                    "give an existing .ckpt, a bucket URL, a bare filename from the bucket, or ckpt_path=auto")


def check_pretrained(cfg):
    value = _get(cfg, "pretrained", None)
    if not value:
        return None
    value = str(value)
    looks_local = value.startswith(("/", "./", "../", "~")) and "://" not in value
    if looks_local and not Path(value).expanduser().is_file():
        return _msg("pretrained", value, "is not a file",
                    "give an existing .pth/.ckpt, a bucket URL, a registry name (neo-weights list) or null")


def check_ema(cfg):
    ema = _get(cfg, "callbacks.ema", None)
    if ema is None:
        return None
    decay = ema.get("decay", 0.9999)
    if not isinstance(decay, (int, float)) or not 0 < decay < 1:
        return _msg("callbacks.ema.decay", decay, "must be in (0, 1)", "use 0.9999 (RT-DETR) or callbacks.ema=null")


RULES: list[Callable[[DictConfig], str | None]] = [
    check_lr, check_weight_decay, check_backbone_lr, check_betas, check_schedule_name, check_warmup,
    check_milestones, check_gamma, check_min_lr_ratio, check_precision, check_accumulate, check_epochs,
    check_clip, check_val_cadence, check_accelerator, check_ddp_multirun, check_batch_size, check_train_scales, check_no_aug_epochs, check_workers,
    check_sizes_16x9, check_dataset_paths, check_num_classes, check_on_bad_image, check_min_box_size, check_storage_choice,
    check_storage,
    check_run_name, check_seed, check_torch_threads, check_ckpt_path, check_pretrained, check_ema,
]


def config_errors(cfg: DictConfig) -> list[str]:
    """Messages of every failing rule (empty when the config is valid)."""
    errors = []
    for rule in RULES:
        try:
            message = rule(cfg)
        except Exception as exc:  # noqa: BLE001 - a rule must never hide the real error
            message = f"{rule.__name__}: could not check ({type(exc).__name__}: {exc})"
        if message:
            errors.append(message)
    return errors


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming every invalid key/value and how to fix it."""
    errors = config_errors(cfg)
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise ConfigError(f"invalid configuration ({len(errors)} problem{'s' * (len(errors) > 1)}):\n{lines}")
