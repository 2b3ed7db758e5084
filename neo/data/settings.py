"""``cfg.data``: every rule on the DataModule's arguments, torch-free so ``neo-train`` answers before torch loads.

:func:`data_problems` lists every invalid value (sizes through :mod:`neo.data.sizes`); ``NeoDataModule``
raises them on construction, and the configuration checker collects them with the other owners'.
:func:`dataset_path_problems` names configured dataset files that are missing (checked before a run,
not by the constructor, which also serves synthetic data generated on first use).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neo.config_problems import is_integer, is_number, problem, unknown_keys
from neo.data.sizes import check_16x9, check_sizes, ladder

ON_BAD_IMAGE = ("skip", "error")
# NeoDataModule's arguments (tests/data/test_settings.py keeps this in step with its signature), plus Hydra's keys.
DATAMODULE_ARGS = (
    "root", "train_images", "train_annotations", "val_images", "val_annotations", "test_images", "test_annotations",
    "predict_images", "predict_annotations", "num_classes", "resolution", "eval_size", "train_sizes", "train_scales",
    "batch_size", "eval_batch_size", "num_workers", "pin_memory", "persistent_workers", "prefetch_factor",
    "drop_last", "augment", "no_aug_epochs", "max_epochs", "on_bad_image", "min_box_size", "seed", "synthetic",
    "dense",
)
# ``data.dense`` (neo.data.dense.DenseAugment's arguments, plus the epoch range the sampler reads) and DEIM's values.
DENSE_DEFAULTS = {"mosaic_prob": 0.5, "mixup_prob": 0.5, "epochs": [0, 0.5], "rotate": 10.0, "translate": 0.1,
                  "scale": [0.5, 1.5]}
HYDRA_KEYS = ("_target_", "_convert_", "_recursive_", "_partial_")
PATH_KEYS = ("train_annotations", "val_annotations", "train_images", "val_images", "test_annotations", "test_images")


def size_problems(resolution: Any, eval_size: Any, train_sizes: Any, train_scales: Any) -> list[str]:
    """16:9 and shape problems of the size keys (each size is checked once, by neo.data.sizes)."""
    out = []
    for key, value in (("data.resolution", resolution), ("data.eval_size", eval_size)):
        if value is not None:
            try:
                check_16x9(value, key=key)
            except ValueError as exc:
                out.append(str(exc))
    if train_sizes:
        for i, value in enumerate(train_sizes):
            try:
                check_16x9(value, key=f"data.train_sizes[{i}]")
            except ValueError as exc:
                out.append(str(exc))
    elif train_scales is not None:
        if any(not is_number(s) or s <= 0 for s in train_scales):
            out.append(problem("data.train_scales", list(train_scales), "must be positive numbers",
                               "use e.g. [0.75, 0.875, 1.0, 1.125, 1.25] (multiples of data.resolution)"))
    return out


def data_problems(args: Mapping[str, Any]) -> list[str]:
    """Every invalid value among NeoDataModule's arguments ``args`` (a ``cfg.data`` mapping works)."""
    out = unknown_keys("data", {k: v for k, v in args.items() if k not in HYDRA_KEYS}, DATAMODULE_ARGS)
    out += size_problems(args.get("resolution", "360p"), args.get("eval_size"), args.get("train_sizes"),
                         args.get("train_scales"))
    for key in ("batch_size", "eval_batch_size"):
        value = args.get(key, 4 if key == "batch_size" else None)
        if (key == "batch_size" or value is not None) and (not is_integer(value) or value < 1):
            out.append(problem(f"data.{key}", value, "must be an integer >= 1", f"use e.g. data.{key}=4"))
    workers = args.get("num_workers", 0)
    if not is_integer(workers) or workers < 0:
        out.append(problem("data.num_workers", workers, "must be an integer >= 0",
                           "use 0 (load in the main process) or the number of cores to spare"))
    no_aug = args.get("no_aug_epochs", 0)
    if not is_integer(no_aug) or no_aug < 0:
        out.append(problem("data.no_aug_epochs", no_aug, "must be an integer >= 0", "use e.g. 2 (0 keeps heavy augmentation on)"))
    classes = args.get("num_classes")
    if classes is not None and (not is_integer(classes) or classes < 1):
        out.append(problem("data.num_classes", classes, "must be >= 1", "set it to the number of categories in the dataset"))
    policy = args.get("on_bad_image", "error")
    if policy not in ON_BAD_IMAGE:
        out.append(problem("data.on_bad_image", policy, "is not a policy",
                           "use 'skip' (warn and serve the next image) or 'error' (stop, naming the file)"))
    min_box = args.get("min_box_size", 1.0)
    if not is_number(min_box) or min_box < 0:
        out.append(problem("data.min_box_size", min_box, "must be a number >= 0 (pixels)",
                           "use 1.0 (boxes thinner than 1 px are dropped)"))
    out += dense_problems(args.get("dense"))
    return out


def dense_problems(dense: Any) -> list[str]:
    """Problems of ``data.dense``: null (off) or a mapping of DENSE_DEFAULTS' keys (every key optional)."""
    if dense is None:
        return []
    if not isinstance(dense, Mapping):
        return [problem("data.dense", dense, "must be null (off) or a mapping",
                        "use loss=deim, or data.dense={mosaic_prob: 0.5, mixup_prob: 0.5, epochs: [0, 0.5]}")]
    out = unknown_keys("data.dense", dense, tuple(DENSE_DEFAULTS))
    for key in ("mosaic_prob", "mixup_prob"):
        value = dense.get(key, DENSE_DEFAULTS[key])
        if not is_number(value) or not 0 <= value <= 1:
            out.append(problem(f"data.dense.{key}", value, "must be a probability in [0, 1]", "use e.g. 0.5 (DEIM)"))
    epochs = dense.get("epochs", DENSE_DEFAULTS["epochs"])
    start, stop = (list(epochs) + [None, None])[:2] if isinstance(epochs, (list, tuple)) else (None, None)
    fraction = isinstance(stop, float) and 0 < stop < 1
    if (not isinstance(epochs, (list, tuple)) or len(epochs) != 2 or not is_integer(start) or start < 0
            or not (stop is None or fraction or (is_integer(stop) and stop > start))):
        out.append(problem("data.dense.epochs", epochs, "must be [start, stop]: integers 0 <= start < stop, stop a "
                           "fraction of trainer.max_epochs in (0, 1), or stop null (until data.no_aug_epochs)",
                           "use e.g. [0, 0.5] (the first half, as DEIM), or [4, 29] as DEIM on 58 epochs"))
    rotate = dense.get("rotate", DENSE_DEFAULTS["rotate"])
    if not is_number(rotate) or not 0 <= rotate <= 180:
        out.append(problem("data.dense.rotate", rotate, "must be degrees in [0, 180]", "use e.g. 10 (DEIM)"))
    translate = dense.get("translate", DENSE_DEFAULTS["translate"])
    if not is_number(translate) or not 0 <= translate < 0.5:
        out.append(problem("data.dense.translate", translate, "must be a fraction of the canvas in [0, 0.5)",
                           "use e.g. 0.1 (DEIM)"))
    scale = dense.get("scale", DENSE_DEFAULTS["scale"])
    if (not isinstance(scale, (list, tuple)) or len(scale) != 2 or not all(is_number(v) for v in scale)
            or not 0 < scale[0] <= scale[1]):
        out.append(problem("data.dense.scale", scale, "must be [low, high] with 0 < low <= high",
                           "use e.g. [0.5, 1.5] (DEIM)"))
    return out


def dataset_path_problems(args: Mapping[str, Any]) -> list[str]:
    """Configured local dataset files and folders that do not exist (none when data is synthetic)."""
    if args.get("synthetic"):
        return []  # generated on first use (NeoDataModule.prepare_data)
    out = []
    for key in PATH_KEYS:
        value = args.get(key)
        if isinstance(value, str) and value and "://" not in value and not Path(value).exists():
            out.append(problem(f"data.{key}", value, "does not exist",
                               "point it at your COCO-format dataset (see neo-data download coco / neo-data synth) "
                               "or pass data.root=/path/to/dataset"))
            break  # one missing path says it: the rest usually follow from the same data.root
    return out


def train_sizes_of(resolution: Any, train_sizes: Any, train_scales: Any) -> list[tuple[int, int]]:
    """The (height, width) training ladder: ``train_sizes`` as given, else ``resolution`` x ``train_scales``."""
    if train_sizes:
        return check_sizes(train_sizes, key="data.train_sizes")
    return ladder(resolution, train_scales, key="data.resolution")
