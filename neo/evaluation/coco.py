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

Distributed: when ``torch.distributed`` is initialised with more than one rank, ``compute()`` and
``detections()`` gather every rank's predictions with ``all_gather_object`` (collective: call them on
every rank), de-duplicate image ids (``DistributedSampler`` pads the last shard by repeating images;
the first occurrence, in rank order, wins) and compute the metrics on EVERY rank. All ranks then hold
identical metrics with no broadcast, so logging them from any rank (or with ``rank_zero_only``) is
consistent. The gathered result is cached until the next ``update``/``reset``.

Undefined metrics (e.g. APs when the evaluated images hold no small ground truth) are -1, as in
pycocotools. With ground truth but no detections, AP is 0.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_convert

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


def _as_numpy(value: Any, dtype: type) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


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
        with _quiet():
            self._gt = self._coco_cls(str(self.annotation_file))

        self._label_to_category = np.asarray(list(label_to_category_id), dtype=np.int64)
        file_categories = {int(c["id"]): c["name"] for c in self._gt.dataset.get("categories", [])}
        unknown = sorted(set(self._label_to_category.tolist()) - set(file_categories))
        if len(self._label_to_category) == 0 or unknown:
            raise ValueError(
                f"label_to_category_id={self._label_to_category.tolist()} names category ids {unknown} that "
                f"are not in {self.annotation_file} (its ids: {sorted(file_categories)}); build the map from "
                "the same annotation file"
            )
        if len(set(self._label_to_category.tolist())) != len(self._label_to_category):
            raise ValueError(f"label_to_category_id={self._label_to_category.tolist()} repeats a category id")
        self._category_names = {cid: file_categories[cid] for cid in self._label_to_category.tolist()}
        self._all_image_ids = sorted(int(i) for i in self._gt.getImgIds())
        self._known_image_ids = set(self._all_image_ids)
        self._local: dict[int, ImageDetections] = {}
        self._merged: dict[int, ImageDetections] | None = None
        self.last_cocoeval = None  # the accumulated COCOeval of the last compute() (per-class results, plots)

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
        boxes = torch.as_tensor(_as_numpy(prediction["boxes"], np.float64)).reshape(-1, 4)
        scores = _as_numpy(prediction["scores"], np.float64).reshape(-1)
        labels = _as_numpy(prediction["labels"], np.int64).reshape(-1)
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

    def _gathered(self) -> dict[int, ImageDetections]:
        """This rank's predictions, or all ranks' merged ones under DDP (collective), cached."""
        if self._merged is not None:
            return self._merged
        local = list(self._local.items())
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size(self.process_group) > 1:
            per_rank: list[Any] = [None] * dist.get_world_size(self.process_group)
            dist.all_gather_object(per_rank, local, group=self.process_group)
        else:
            per_rank = [local]
        self._merged = merge_rank_results(per_rank)
        return self._merged

    def detections(self) -> list[dict[str, Any]]:
        """All detections in COCO results format, sorted by image id (collective under DDP).

        Returns:
            list of {"image_id": int, "category_id": int (original), "bbox": [x, y, w, h] px, "score": float}.
        """
        results: list[dict[str, Any]] = []
        merged = self._gathered()
        for image_id in sorted(merged):
            xywh, scores, category_ids = merged[image_id]
            for box, score, category_id in zip(
                xywh.tolist(), scores.tolist(), category_ids.tolist(), strict=True
            ):
                results.append(
                    {"image_id": image_id, "category_id": category_id, "bbox": box, "score": score}
                )
        return results

    def evaluated_image_ids(self) -> list[int]:
        """Image ids compute() evaluates: the seen ones (merged over ranks) or all of the file's."""
        return sorted(self._gathered()) if self.images == "seen" else list(self._all_image_ids)

    def _load_results(self, results: list[dict[str, Any]]):
        """COCO object of the detections; an empty one by hand, since pycocotools' loadRes fails on []."""
        if results:
            with _quiet():
                return self._gt.loadRes(results)
        empty = self._coco_cls()
        empty.dataset = {
            "images": list(self._gt.dataset["images"]),
            "categories": list(self._gt.dataset["categories"]),
            "annotations": [],
        }
        with _quiet():
            empty.createIndex()
        return empty

    def run_cocoeval(self):
        """Run evaluate/accumulate/summarize; returns the backend's COCOeval (for callers wanting more)."""
        image_ids = self.evaluated_image_ids()
        coco_dt = self._load_results(self.detections())
        kwargs = {"print_function": lambda *args, **kwargs: None} if self.backend == "faster" else {}
        evaluator = self._eval_cls(self._gt, coco_dt, self.iou_type, **kwargs)
        evaluator.params.imgIds = image_ids
        evaluator.params.catIds = sorted(self._label_to_category.tolist())
        with _quiet():
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return evaluator

    def compute(self) -> dict[str, float]:
        """Metrics over everything passed to update (collective under DDP; same result on every rank).

        Returns:
            {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"} floats
            in [0, 1] or -1 (undefined), plus "AP/<category name>" per class when per_class=True.
        """
        if not self.evaluated_image_ids():
            warnings.warn(
                "CocoEvaluator.compute() called with no images seen; returning -1 metrics", stacklevel=2
            )
            metrics = dict.fromkeys(METRIC_NAMES, -1.0)
            if self.per_class:
                metrics.update({f"AP/{name}": -1.0 for name in self._category_names.values()})
            return metrics
        evaluator = self.run_cocoeval()
        self.last_cocoeval = evaluator
        stats = np.asarray(evaluator.stats, dtype=np.float64)[: len(METRIC_NAMES)]
        metrics = {name: float(value) for name, value in zip(METRIC_NAMES, stats, strict=True)}
        if self.per_class:
            metrics.update(self._per_class_ap(evaluator))
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
