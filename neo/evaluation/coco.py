"""COCO box metrics (AP/AR) for neo's detections through faster-coco-eval or pycocotools, DDP-aware.

Predictions come from the model's postprocessor: per image a dict with "boxes" [K, 4] xyxy in ORIGINAL
image pixels, "scores" [K] and "labels" [K] int64 contiguous 0..C-1. The evaluator maps labels to the
annotation file's original category ids, converts boxes to COCO xywh and runs COCOeval against the
dataset's own annotation file.

Which images are evaluated (``images``):
- ``"seen"`` (default, for validation): only the image ids passed to ``update``. With
  ``limit_val_batches`` or a debug subset, the images never shown to the model would otherwise count as
  misses and drag AP down, so the figure would depend on the subset size instead of the model.
- ``"all"``: every image in the annotation file; an image never passed to ``update`` counts as having
  no detections. Use this for a full evaluation (``neo-eval``) so a dataloader that silently dropped
  images cannot inflate AP.

Distributed: when ``torch.distributed`` is initialised with more than one rank, ``compute()`` gathers
every rank's predictions on rank 0 (``gather_object``), de-duplicates image ids (``DistributedSampler``
pads the last shard by repeating images; the first occurrence, in rank order, wins), runs COCOeval ONCE
there and broadcasts the metrics: every rank returns the same numbers, identical to a single-process
evaluation, while the other ranks neither parse the ground truth (when ``known_image_ids`` is given) nor
pay the evaluation's time and memory. ``detections()`` gathers on every rank (``all_gather_object``) and
caches the result until the next ``update``/``reset``. Both are collective: call them on every rank.

Memory: the detections handed to COCOeval are built once as the result dicts COCOeval indexes (no
``loadRes`` copy, with the cyclic garbage collector paused while millions of them are made), and after
each ``compute()`` they are freed, collected and returned to the operating system (``malloc_trim`` on
glibc), so a long run's resident memory does not step up by a gigabyte per validation.

Undefined metrics (e.g. APs when the evaluated images hold no small ground truth) are -1, as in
pycocotools. With ground truth but no detections, AP is 0.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import ctypes.util
import gc
import io
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_convert

from neo.evaluation.arrays import as_numpy

# The first 12 COCOeval stats, in pycocotools' order.
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
BACKENDS = ("faster", "pycocotools")
IMAGE_SCOPES = ("seen", "all")

# One image's detections: (boxes_xywh float64 [K, 4], scores float64 [K], category_ids int64 [K]).
ImageDetections = tuple[np.ndarray, np.ndarray, np.ndarray]


def merge_rank_results(
    per_rank: Sequence[Sequence[tuple[int, ImageDetections]]],
) -> dict[int, ImageDetections]:
    """Merge per-rank ``[(image_id, detections), ...]`` lists into one dict, first occurrence wins.

    DistributedSampler pads the last shard by repeating images from the start of the index list, so the
    same image id can arrive from two ranks (or twice from one rank); counting it twice would double its
    ground truth and skew AP. Ranks are taken in order, so the result is the same on every rank.
    """
    merged: dict[int, ImageDetections] = {}
    for rank_items in per_rank:
        for image_id, detections in rank_items:
            merged.setdefault(int(image_id), detections)
    return merged


def _backend_api(backend: str) -> tuple[type, type]:
    """(COCO class, COCOeval class) of a backend; faster-coco-eval's evaluator is the C++ one."""
    if backend == "faster":
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    raise ValueError(f"backend={backend!r} is not supported; use one of {BACKENDS}")


def _quiet():
    """Silence pycocotools' progress prints (it writes to stdout)."""
    return contextlib.redirect_stdout(io.StringIO())


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic GC while building millions of acyclic dicts (each allocation burst would otherwise
    trigger full collections that walk them all); restore its previous state afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def return_memory_to_os() -> None:
    """Collect garbage, then ask glibc to give freed heap pages back (``malloc_trim(0)``); the allocator
    otherwise keeps the evaluation's peak resident. A no-op off Linux/glibc."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # musl or another libc without malloc_trim
        pass


class CocoEvaluator:
    """Accumulates postprocessed predictions over an epoch and computes COCO box AP/AR.

    Args:
        annotation_file: COCO instances JSON of the split (the dataset's own file).
        label_to_category_id: ``label_to_category_id[label]`` is the file's category id of contiguous
            label ``label`` (len C). Evaluation covers exactly these categories.
        backend: ``"faster"`` (faster-coco-eval, default, ~10x faster) or ``"pycocotools"``; the metrics
            are identical on the same detections.
        iou_type: only ``"bbox"`` (the model predicts boxes).
        images: ``"seen"`` or ``"all"`` — see the module docstring.
        per_class: also return ``"AP/<category name>"`` (AP@[.5:.95], -1 if the class has no GT).
        process_group: torch.distributed group to gather over (default: the world).
        known_image_ids: the image ids ``update`` may receive (e.g. the dataset's own, read from its
            annotation index). Given, the ground truth is parsed lazily, only where metrics are computed
            (rank 0), and ``label_to_category_id`` is checked then; None parses it here.
    """

    def __init__(
        self,
        annotation_file: str | Path,
        label_to_category_id: Sequence[int],
        backend: str = "faster",
        iou_type: str = "bbox",
        images: str = "seen",
        per_class: bool = False,
        process_group: Any = None,
        known_image_ids: Sequence[int] | None = None,
    ) -> None:
        if iou_type != "bbox":
            raise ValueError(
                f"iou_type={iou_type!r} is not supported; neo's models predict boxes: use 'bbox'"
            )
        if images not in IMAGE_SCOPES:
            raise ValueError(
                f"images={images!r} is not supported; use 'seen' (validation) or 'all' (full eval)"
            )
        self.annotation_file = Path(annotation_file)
        if not self.annotation_file.is_file():
            raise FileNotFoundError(f"annotation_file={str(self.annotation_file)!r} does not exist")
        self.backend = backend
        self.iou_type = iou_type
        self.images = images
        self.per_class = per_class
        self.process_group = process_group
        self._coco_cls, self._eval_cls = _backend_api(backend)
        self._label_to_category = np.asarray(list(label_to_category_id), dtype=np.int64)
        if len(set(self._label_to_category.tolist())) != len(self._label_to_category):
            raise ValueError(f"label_to_category_id={self._label_to_category.tolist()} repeats a category id")
        self._gt: Any = None
        self._category_names: dict[int, str] = {}
        self._all_image_ids: list[int] = []
        self._known_image_ids = None if known_image_ids is None else {int(i) for i in known_image_ids}
        self.evaluations_run = 0  # COCOeval runs in this process (one per compute() on the computing rank)
        if known_image_ids is None:
            self._ground_truth()
        self._local: dict[int, ImageDetections] = {}
        self._merged: dict[int, ImageDetections] | None = None
        self.last_cocoeval = None  # COCOeval of the last compute() on the computing rank (per-class results)

    def _ground_truth(self):
        """The backend's COCO object of the annotation file, parsed on first use; checks the label map."""
        if self._gt is not None:
            return self._gt
        with _quiet():
            gt = self._coco_cls(str(self.annotation_file))
        file_categories = {int(c["id"]): c["name"] for c in gt.dataset.get("categories", [])}
        unknown = sorted(set(self._label_to_category.tolist()) - set(file_categories))
        if len(self._label_to_category) == 0 or unknown:
            raise ValueError(
                f"label_to_category_id={self._label_to_category.tolist()} names category ids {unknown} that "
                f"are not in {self.annotation_file} (its ids: {sorted(file_categories)}); build the map from "
                "the same annotation file"
            )
        self._category_names = {cid: file_categories[cid] for cid in self._label_to_category.tolist()}
        self._all_image_ids = sorted(int(i) for i in gt.getImgIds())
        if self._known_image_ids is None:
            self._known_image_ids = set(self._all_image_ids)
        self._gt = gt
        return gt

    @property
    def ground_truth_loaded(self) -> bool:
        """Whether this process has parsed the annotation file (only the computing rank needs it)."""
        return self._gt is not None

    @property
    def num_classes(self) -> int:
        return len(self._label_to_category)

    def reset(self) -> None:
        """Forget all predictions (call at the start of each validation epoch)."""
        self._local = {}
        self._merged = None
        self.last_cocoeval = None

    def update(self, predictions: Sequence[dict[str, Any]], image_ids: Sequence[int] | torch.Tensor) -> None:
        """Add one batch.

        Args:
            predictions: B dicts "boxes" [K, 4] xyxy original px, "scores" [K], "labels" [K] int (0..C-1).
            image_ids: B COCO image ids (ints or int64 scalar tensors, or an int64 [B] tensor). An image
                with K=0 still counts as seen. A repeated id keeps its first predictions.
        """
        if isinstance(image_ids, torch.Tensor):
            image_ids = image_ids.reshape(-1).tolist()
        if len(predictions) != len(image_ids):
            raise ValueError(f"update got {len(predictions)} predictions but {len(image_ids)} image_ids")
        for prediction, image_id in zip(predictions, image_ids, strict=True):
            image_id = int(image_id)
            if image_id not in self._known_image_ids:
                raise ValueError(
                    f"image_id={image_id} is not in {self.annotation_file}; evaluate against the annotation "
                    "file of the split the dataloader reads"
                )
            if image_id not in self._local:
                self._local[image_id] = self._convert(prediction, image_id)
        self._merged = None

    def _convert(self, prediction: dict[str, Any], image_id: int) -> ImageDetections:
        """Postprocessor dict -> (xywh float64 [K, 4], scores [K], category ids [K])."""
        missing = {"boxes", "scores", "labels"} - set(prediction)
        if missing:
            raise KeyError(
                f"prediction for image_id={image_id} lacks {sorted(missing)}; expected boxes/scores/labels"
            )
        boxes = torch.as_tensor(as_numpy(prediction["boxes"], np.float64)).reshape(-1, 4)
        scores = as_numpy(prediction["scores"], np.float64).reshape(-1)
        labels = as_numpy(prediction["labels"], np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(labels):
            raise ValueError(
                f"prediction for image_id={image_id}: boxes {len(boxes)}, scores {len(scores)}, labels "
                f"{len(labels)} must have the same length K"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = sorted(set(labels[(labels < 0) | (labels >= self.num_classes)].tolist()))
            raise ValueError(
                f"prediction for image_id={image_id} has labels {bad} outside 0..{self.num_classes - 1} "
                f"(label_to_category_id has {self.num_classes} entries); check model num_classes"
            )
        xywh = box_convert(boxes, "xyxy", "xywh").numpy()
        return xywh, scores, self._label_to_category[labels]

    def _world(self) -> int:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(self.process_group)
        return 1

    def _gathered(self) -> dict[int, ImageDetections]:
        """This rank's predictions, or all ranks' merged ones on every rank under DDP (collective), cached."""
        if self._merged is not None:
            return self._merged
        local = list(self._local.items())
        if self._world() > 1:
            per_rank: list[Any] = [None] * self._world()
            torch.distributed.all_gather_object(per_rank, local, group=self.process_group)
        else:
            per_rank = [local]
        self._merged = merge_rank_results(per_rank)
        return self._merged

    def _root(self) -> int:
        """Global rank of the group's first rank: where metrics are computed."""
        dist = torch.distributed
        return dist.get_global_rank(self.process_group, 0) if self.process_group is not None else 0

    def _gathered_on_root(self) -> dict[int, ImageDetections] | None:
        """All ranks' merged predictions on rank 0 of the group, None elsewhere (collective under DDP)."""
        if self._world() == 1:
            return self._gathered()
        is_root = torch.distributed.get_rank() == self._root()
        if self._merged is not None:  # detections() already gathered them everywhere
            return self._merged if is_root else None
        per_rank: list[Any] | None = [None] * self._world() if is_root else None
        torch.distributed.gather_object(list(self._local.items()), per_rank, dst=self._root(),
                                        group=self.process_group)
        return merge_rank_results(per_rank) if is_root else None

    def detections(self) -> list[dict[str, Any]]:
        """All detections in COCO results format, sorted by image id (collective under DDP).

        Returns:
            list of {"image_id": int, "category_id": int (original), "bbox": [x, y, w, h] px, "score": float}.
        """
        merged = self._gathered()
        with _collector_paused():
            return [
                {"image_id": image_id, "category_id": category_id, "bbox": box, "score": score}
                for image_id in sorted(merged)
                for box, score, category_id in zip(
                    merged[image_id][0].tolist(), merged[image_id][1].tolist(), merged[image_id][2].tolist(),
                    strict=True,
                )
            ]

    def evaluated_image_ids(self) -> list[int]:
        """Image ids compute() evaluates: the seen ones (merged over ranks) or all of the file's."""
        return self._evaluated_image_ids(self._gathered())

    def _evaluated_image_ids(self, merged: dict[int, ImageDetections]) -> list[int]:
        if self.images == "seen":
            return sorted(merged)
        self._ground_truth()
        return list(self._all_image_ids)

    def _results_coco(self, merged: dict[int, ImageDetections]):
        """COCO object of the detections, built straight from the arrays.

        The annotations are made once with every field COCOeval reads (``loadRes`` would copy each dict and
        add an 8-float polygon per box, unused by box evaluation); ``area`` = w * h, ``id`` = 1..D in image
        order and ``iscrowd`` = 0 exactly as ``loadRes`` sets them, so the metrics are identical. An empty
        result needs no special case (pycocotools' ``loadRes`` fails on [])."""
        gt = self._ground_truth()
        image_ids = sorted(merged)
        parts = [merged[i] for i in image_ids]
        counts = [len(p[1]) for p in parts]
        xywh = np.concatenate([p[0] for p in parts]).reshape(-1, 4) if parts else np.zeros((0, 4))
        scores = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
        category_ids = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
        image_column = np.repeat(np.asarray(image_ids, dtype=np.int64), counts)
        areas = xywh[:, 2] * xywh[:, 3]
        with _collector_paused():
            annotations = [
                {"image_id": image_id, "category_id": category_id, "bbox": box, "score": score, "area": area,
                 "id": number, "iscrowd": 0}
                for number, (image_id, category_id, box, score, area) in enumerate(
                    zip(image_column.tolist(), category_ids.tolist(), xywh.tolist(), scores.tolist(),
                        areas.tolist(), strict=True),
                    start=1,
                )
            ]
            results = self._coco_cls()
            results.dataset = {
                "images": list(gt.dataset["images"]),
                "categories": copy.deepcopy(gt.dataset["categories"]),
                "annotations": annotations,
            }
            with _quiet():
                results.createIndex()
        return results

    def run_cocoeval(self):
        """Run evaluate/accumulate/summarize on this rank's (single process: all) predictions; returns the
        backend's COCOeval (for callers wanting more). Under DDP use compute(), which runs it once."""
        return self._run_cocoeval(self._gathered())

    def _run_cocoeval(self, merged: dict[int, ImageDetections]):
        coco_dt = self._results_coco(merged)
        kwargs = {"print_function": lambda *args, **kwargs: None} if self.backend == "faster" else {}
        evaluator = self._eval_cls(self._ground_truth(), coco_dt, self.iou_type, **kwargs)
        evaluator.params.imgIds = self._evaluated_image_ids(merged)
        evaluator.params.catIds = sorted(self._label_to_category.tolist())
        with _quiet(), _collector_paused():
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        self.evaluations_run += 1
        return evaluator

    def compute(self) -> dict[str, float]:
        """Metrics over everything passed to update (collective under DDP: computed once on rank 0 and
        broadcast, so every rank returns the same numbers).

        Returns:
            {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"} floats
            in [0, 1] or -1 (undefined), plus "AP/<category name>" per class when per_class=True.
        """
        merged = self._gathered_on_root()
        if self._world() == 1:
            return self._metrics(merged)
        outcome: dict[str, float] | Exception | None = None
        if merged is not None:
            try:
                outcome = self._metrics(merged)
            except Exception as error:  # noqa: BLE001 - handed to every rank, so none waits forever
                outcome = error
        box = [outcome]
        torch.distributed.broadcast_object_list(box, src=self._root(), group=self.process_group)
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    def _metrics(self, merged: dict[int, ImageDetections]) -> dict[str, float]:
        if not self._evaluated_image_ids(merged):
            warnings.warn(
                "CocoEvaluator.compute() called with no images seen; returning -1 metrics", stacklevel=3
            )
            self._ground_truth()
            metrics = dict.fromkeys(METRIC_NAMES, -1.0)
            if self.per_class:
                metrics.update({f"AP/{name}": -1.0 for name in self._category_names.values()})
            return metrics
        evaluator = self._run_cocoeval(merged)
        self.last_cocoeval = evaluator
        stats = np.asarray(evaluator.stats, dtype=np.float64)[: len(METRIC_NAMES)]
        metrics = {name: float(value) for name, value in zip(METRIC_NAMES, stats, strict=True)}
        if self.per_class:
            metrics.update(self._per_class_ap(evaluator))
        del evaluator
        return_memory_to_os()
        return metrics

    def _per_class_ap(self, evaluator) -> dict[str, float]:
        """AP@[.5:.95] per category: mean of defined precision[T, R, k, area=all, maxDets=100]."""
        precision = np.asarray(evaluator.eval["precision"])  # [T, R, K, A, M]
        category_ids = list(evaluator.params.catIds)
        per_class = {}
        for category_id, name in self._category_names.items():
            values = precision[:, :, category_ids.index(category_id), 0, -1]
            values = values[values > -1]
            per_class[f"AP/{name}"] = float(values.mean()) if values.size else -1.0
        return per_class
