"""NeoDataModule: COCO-format train/val/test/predict loaders serving 16:9 uint8 batches.

Sizes: `resolution` ("720p", "1280x720" or [720, 1280]) is the base; `eval_size` defaults to it and
`train_sizes` defaults to the 16:9 ladder resolution x `train_scales`. All sizes are validated as
16:9 in the constructor (i.e. when Hydra instantiates the config), naming the bad key and value;
every argument rule lives in :mod:`neo.data.settings`. Loaders use at most the cores available and
pin memory only with CUDA.
Train batches come from `MultiScaleBatchSampler` (one size per batch; heavy augmentation and
multi-scale off for the last `no_aug_epochs` of `max_epochs`). `dense` (DEIM's dense one-to-one data:
mosaic / mixup, :mod:`neo.data.dense`) runs in its epoch range while heavy augmentation is on. Lightning's
fit loop drives the epoch through the sampler; `set_epoch(epoch)` is there for other loops.
Every loader yields (images uint8 [B, 3, H, W], targets: list of B dicts) as CocoDetection documents;
eval loaders letterbox to `eval_size` with the same geometry as training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from neo.config_problems import raise_problems
from neo.cores import available_cores
from neo.data.coco import CocoDetection, DatasetError
from neo.data.collate import collate_detection
from neo.data.dense import DenseAugment
from neo.data.loader import ResumableDataLoader
from neo.data.sampler import EpochShuffleSampler, MultiScaleBatchSampler
from neo.data.settings import DENSE_DEFAULTS, data_problems, train_sizes_of
from neo.data.sizes import parse_size
from neo.data.transforms import DetectionTransform

log = logging.getLogger(__name__)


def loader_kwargs(num_workers: int, pin_memory: bool, persistent_workers: bool,
                  prefetch_factor: int | None) -> dict[str, Any]:
    """DataLoader arguments fitted to the machine: workers clamped to the cores available, pinning only with CUDA.

    More workers than cores only adds context switches (and PyTorch's "excessive worker creation"
    warning); pinned memory is for host-to-GPU copies and is pointless (PyTorch warns) without CUDA.
    """
    cores = available_cores()
    if num_workers > cores:
        log.info("data.num_workers=%d -> %d: this process may use %d cores", num_workers, cores, cores)
        num_workers = cores
    if pin_memory and not torch.cuda.is_available():
        pin_memory = False  # CPU training: nothing to pin for
    kwargs: dict[str, Any] = {"num_workers": num_workers, "pin_memory": pin_memory, "collate_fn": collate_detection}
    if num_workers > 0:
        kwargs["persistent_workers"] = persistent_workers
        kwargs["prefetch_factor"] = prefetch_factor
    return kwargs


class NeoDataModule(pl.LightningDataModule):
    """Lightning DataModule over COCO-format splits; exposes class names and the label -> id map.

    Paths: `*_images` folders and `*_annotations` JSON files; test/predict default to val.
    `synthetic`: dict of `generate_synthetic_coco` arguments; when given and the train annotation
    file is missing, `prepare_data()` generates the dataset under `root`.
    """

    def __init__(
        self,
        root: str | Path,
        train_images: str | Path,
        train_annotations: str | Path,
        val_images: str | Path,
        val_annotations: str | Path,
        test_images: str | Path | None = None,
        test_annotations: str | Path | None = None,
        predict_images: str | Path | None = None,
        predict_annotations: str | Path | None = None,
        num_classes: int | None = None,
        resolution: object = "360p",
        eval_size: object | None = None,
        train_sizes: Sequence[object] | None = None,
        train_scales: Sequence[float] = (0.75, 0.875, 1.0, 1.125, 1.25),
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        drop_last: bool = True,
        augment: dict[str, Any] | None = None,
        no_aug_epochs: int = 0,
        max_epochs: int | None = None,
        on_bad_image: str = "error",
        min_box_size: float = 1.0,
        seed: int = 0,
        synthetic: dict[str, Any] | None = None,
        dense: dict[str, Any] | None = None,
    ):
        super().__init__()
        args = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        raise_problems(data_problems(args))
        self.root = Path(root)
        self.paths = {
            "train": (Path(train_images), Path(train_annotations)),
            "val": (Path(val_images), Path(val_annotations)),
        }
        self.paths["test"] = (Path(test_images or val_images), Path(test_annotations or val_annotations))
        self.paths["predict"] = (Path(predict_images or self.paths["test"][0]),
                                 Path(predict_annotations or self.paths["test"][1]))
        self.resolution = parse_size(resolution, key="data.resolution")
        self.eval_size = parse_size(eval_size, key="data.eval_size") if eval_size is not None else self.resolution
        self.train_sizes = train_sizes_of(self.resolution, train_sizes, train_scales)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.loader_kwargs = loader_kwargs(num_workers, pin_memory, persistent_workers, prefetch_factor)
        self.drop_last = drop_last
        self.augment = dict(augment or {})
        self.no_aug_epochs, self.max_epochs = no_aug_epochs, max_epochs
        self.on_bad_image, self.min_box_size, self.seed = on_bad_image, min_box_size, seed
        self.synthetic = dict(synthetic) if synthetic else None
        self.dense = {**DENSE_DEFAULTS, **dense} if dense is not None else None
        self.expected_num_classes = num_classes
        self.datasets: dict[str, CocoDetection] = {}
        self._train_batch_sampler: MultiScaleBatchSampler | None = None
        self._train_loader: ResumableDataLoader | None = None
        self._resume_position: dict[str, Any] | None = None  # from a checkpoint: where the next train loader starts
        self._epoch = 0

    # ---- metadata (available after setup(); read from the val/train JSON lazily otherwise) ----
    def _meta(self) -> CocoDetection:
        if not self.datasets:
            self.setup("validate")
        return next(iter(self.datasets.values()))

    @property
    def num_classes(self) -> int:
        return self._meta().num_classes

    @property
    def class_names(self) -> list[str]:
        return self._meta().class_names

    @property
    def label_to_category_id(self) -> list[int]:
        return self._meta().label_to_category_id

    @property
    def val_annotation_file(self) -> Path:
        return self.paths["val"][1]

    @property
    def test_annotation_file(self) -> Path:
        return self.paths["test"][1]

    # ---- Lightning hooks ----
    def prepare_data(self) -> None:
        """Generate the synthetic dataset when configured and absent (runs on one process)."""
        if self.synthetic is not None and not self.paths["train"][1].is_file():
            from filelock import FileLock

            from neo.data.synth import generate_synthetic_coco

            self.root.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.root / ".generate.lock")):  # parallel runs generate it once
                if not self.paths["train"][1].is_file():
                    log.info("generating synthetic dataset under %s", self.root)
                    generate_synthetic_coco(self.root, **self.synthetic)

    def _dataset(self, split: str) -> CocoDetection:
        if split not in self.datasets:
            self.prepare_data()  # no-op unless synthetic and not generated yet
            images, annotations = self.paths[split]
            train = split == "train"
            transform = DetectionTransform(train=train, min_box_size=self.min_box_size, **(self.augment if train else {}))
            ds = CocoDetection(images, annotations, size=self.eval_size, transform=transform,
                               on_bad_image=self.on_bad_image, min_box_size=self.min_box_size,
                               dense=self._dense_augment() if train else None)
            if self.expected_num_classes is not None and ds.num_classes != self.expected_num_classes:
                raise DatasetError(
                    f"data.num_classes={self.expected_num_classes} but {annotations} has {ds.num_classes} "
                    f"categories ({ds.class_names}); set data.num_classes={ds.num_classes}."
                )
            if ds.num_boxes == 0:
                dropped = f" ({ds.num_degenerate_dropped} degenerate boxes dropped)" if ds.num_degenerate_dropped else ""
                if train:
                    raise DatasetError.of(
                        str(annotations), f"has {len(ds)} images but no usable annotations{dropped}: training would "
                        "learn nothing", "point data.train_annotations at the annotated file (crowd boxes do not "
                        f"count); `neo-data verify {self.root}` checks a dataset")
                log.warning("%s has no usable annotations%s: its AP is undefined (reported as 0).", annotations, dropped)
            self.datasets[split] = ds
        return self.datasets[split]

    def _dense_augment(self) -> DenseAugment | None:
        """The train dataset's mosaic / mixup from ``dense`` (None when off)."""
        if self.dense is None:
            return None
        args = {k: v for k, v in self.dense.items() if k != "epochs"}
        return DenseAugment(**args, fill=self.augment.get("fill", 0), min_box_size=self.min_box_size)

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in splits.get(stage or "fit", ("train", "val")):
            self._dataset(split)

    def train_dataloader(self) -> DataLoader:
        ds = self._dataset("train")
        batch_sampler = MultiScaleBatchSampler(
            EpochShuffleSampler(len(ds), seed=self.seed), self.batch_size, self.drop_last and len(ds) >= self.batch_size,
            sizes=self.train_sizes, final_size=self.eval_size, no_aug_epochs=self.no_aug_epochs,
            max_epochs=self.max_epochs, seed=self.seed,
            dense_epochs=self.dense["epochs"] if self.dense is not None else None,
        )
        batch_sampler.set_epoch(self._epoch)
        self._train_batch_sampler = batch_sampler
        loader = ResumableDataLoader(ds, batch_sampler=batch_sampler, progress=self.training_progress,
                                     generator=self._loader_generator(), **self.loader_kwargs)
        if self._resume_position is not None:
            loader.load_state_dict(self._resume_position)
        self._train_loader = loader
        return loader

    def _loader_generator(self) -> torch.Generator:
        """The loader's own generator for worker base seeds: creating an iterator then leaves the global torch
        RNG alone (the model's denoising draws from it; a resumed run restores it and must find it untouched)."""
        return torch.Generator().manual_seed(self.seed)

    def training_progress(self) -> tuple[int, int] | None:
        """(epoch, batches whose training step ran) of the Lightning fit this DataModule serves, else None.

        Lightning's own resume position (it re-runs a batch whose step did not finish), so the checkpointed
        position agrees with the loop that restores it; a full epoch counts as the next one's start.
        """
        trainer = self.trainer
        if trainer is None or trainer.state.fn != "fit":
            return None
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        if done >= trainer.num_training_batches:
            return trainer.current_epoch + 1, 0
        return trainer.current_epoch, done

    # ---- checkpoint state: where the training data stream is ----
    def state_dict(self) -> dict[str, Any]:
        """``{"train_position": {epoch, batches_done, seed, max_epochs}}`` once a train loader exists.

        Saved by Lightning with every checkpoint and restored before the resumed fit builds its train loader
        (Lightning's own loader-state restore comes too late when the optimizer setup already built the
        loader to count steps, which neo's schedules do).
        """
        return {"train_position": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Remember the saved position; the next train loader starts there."""
        self._resume_position = dict(state_dict["train_position"]) if state_dict.get("train_position") else None

    def _eval_loader(self, split: str) -> DataLoader:
        ds = self._dataset(split)
        sampler = BatchSampler(SequentialSampler(ds), self.eval_batch_size, drop_last=False)
        return DataLoader(ds, batch_sampler=sampler, generator=self._loader_generator(), **self.loader_kwargs)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")

    def set_epoch(self, epoch: int, max_epochs: int | None = None) -> None:
        """Tell the train batch sampler the epoch (Lightning's fit loop already does this).

        With `max_epochs`, heavy augmentation and multi-scale stop for the last `no_aug_epochs`.
        """
        self._epoch = epoch
        if max_epochs is not None:
            self.max_epochs = max_epochs
        if self._train_batch_sampler is not None:
            if max_epochs is not None:
                self._train_batch_sampler.max_epochs = max_epochs
            self._train_batch_sampler.set_epoch(epoch)
