"""CocoEvaluator: hand-computed AP on both backends, equality with plain pycocotools, mapping, edge cases."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
import torch
from coco_case import (
    CAR_ALL,
    DOG,
    EXPECTED_SEEN,
    LABEL_TO_CATEGORY_ID,
    PERSON,
    predictions,
    write_annotations,
)
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from neo.evaluation.coco import METRIC_NAMES, CocoEvaluator, merge_rank_results

BACKENDS = ["faster", "pycocotools"]


@pytest.fixture
def annotation_file(tmp_path):
    return write_annotations(tmp_path)


def _fed(annotation_file, backend, images="seen", per_class=True) -> CocoEvaluator:
    evaluator = CocoEvaluator(
        annotation_file, LABEL_TO_CATEGORY_ID, backend, images=images, per_class=per_class
    )
    preds = predictions()
    evaluator.update([preds[1], preds[2]], torch.tensor([1, 2]))  # one batch with tensor ids
    evaluator.update([preds[3]], [3])
    return evaluator


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_ap_on_seen_images(annotation_file, backend):
    metrics = _fed(annotation_file, backend).compute()
    assert set(metrics) == set(EXPECTED_SEEN)
    for name, expected in EXPECTED_SEEN.items():
        assert metrics[name] == pytest.approx(expected, abs=1e-9), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_images_counts_unseen_image_as_missed(annotation_file, backend):
    metrics = _fed(annotation_file, backend, images="all").compute()
    assert metrics["AP/car"] == pytest.approx(CAR_ALL, abs=1e-9)
    assert metrics["AP"] == pytest.approx((CAR_ALL + PERSON + DOG) / 3, abs=1e-9)


def test_equals_plain_pycocotools_on_same_detections(annotation_file):
    """images='all' with default params is exactly what a user running pycocotools by hand gets."""
    evaluator = _fed(annotation_file, "faster", images="all", per_class=False)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotation_file))
        reference = COCOeval(gt, gt.loadRes(evaluator.detections()), "bbox")
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    ours = evaluator.compute()
    assert [ours[name] for name in METRIC_NAMES] == pytest.approx(list(reference.stats), abs=1e-12)
    slow = _fed(annotation_file, "pycocotools", images="all", per_class=False).compute()
    assert slow == pytest.approx(ours, abs=1e-12)


def test_detections_map_labels_to_original_ids_and_xywh(annotation_file):
    evaluator = _fed(annotation_file, "faster")
    detections = evaluator.detections()
    assert len(detections) == 6
    assert {d["category_id"] for d in detections} == {1, 3, 7}
    dog = [d for d in detections if d["image_id"] == 2]
    assert dog == [
        {"image_id": 2, "category_id": 7, "bbox": [100.0, 100.0, 100.0, 62.5], "score": pytest.approx(0.8)}
    ]
    person = [d for d in detections if d["image_id"] == 3][0]
    assert person["category_id"] == 3 and person["bbox"] == [10.0, 10.0, 20.0, 20.0]


def test_wrong_mapping_changes_the_result(annotation_file):
    """Swapping person/dog ids makes every person/dog detection hit the wrong class."""
    evaluator = CocoEvaluator(annotation_file, [1, 7, 3], per_class=True)
    preds = predictions()
    evaluator.update([preds[1], preds[2], preds[3]], [1, 2, 3])
    metrics = evaluator.compute()
    assert metrics["AP/person"] == 0.0 and metrics["AP/dog"] == 0.0
    assert metrics["AP/car"] == pytest.approx(EXPECTED_SEEN["AP/car"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_detections_give_zero_ap(annotation_file, backend):
    evaluator = CocoEvaluator(annotation_file, LABEL_TO_CATEGORY_ID, backend)
    empty = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
    }
    evaluator.update([empty, empty, empty], [1, 2, 3])
    metrics = evaluator.compute()
    assert evaluator.detections() == []
    assert metrics["AP"] == 0.0 and metrics["AP50"] == 0.0 and metrics["AR100"] == 0.0
    assert metrics["APm"] == -1.0  # undefined: no medium ground truth


def test_image_without_ground_truth_only_adds_false_positives(annotation_file):
    evaluator = CocoEvaluator(annotation_file, LABEL_TO_CATEGORY_ID)
    evaluator.update([predictions()[3]], [3])  # image 3 has no GT
    metrics = evaluator.compute()
    assert metrics["AP"] == -1.0  # no GT among the seen images: undefined, not a crash


def test_reset_and_repeated_image_ids(annotation_file):
    evaluator = _fed(annotation_file, "faster")
    first = evaluator.compute()
    evaluator.update([predictions()[2]], [1])  # repeat of image 1: its first predictions are kept
    assert evaluator.compute() == pytest.approx(first)
    evaluator.reset()
    assert evaluator.detections() == []
    with pytest.warns(UserWarning, match="no images seen"):
        assert evaluator.compute()["AP"] == -1.0


def test_clear_errors(annotation_file):
    with pytest.raises(ValueError, match=r"category ids \[2\]"):
        CocoEvaluator(annotation_file, [1, 2, 7])
    with pytest.raises(ValueError, match="backend"):
        CocoEvaluator(annotation_file, LABEL_TO_CATEGORY_ID, backend="nope")
    with pytest.raises(ValueError, match="images="):
        CocoEvaluator(annotation_file, LABEL_TO_CATEGORY_ID, images="some")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        CocoEvaluator(annotation_file.parent / "missing.json", LABEL_TO_CATEGORY_ID)
    evaluator = CocoEvaluator(annotation_file, LABEL_TO_CATEGORY_ID)
    with pytest.raises(ValueError, match="image_id=99"):
        evaluator.update([predictions()[1]], [99])
    bad = dict(predictions()[1], labels=torch.tensor([0, 0, 3, 1]))
    with pytest.raises(ValueError, match=r"labels \[3\] outside 0..2"):
        evaluator.update([bad], [1])


def test_merge_rank_results_drops_sampler_padding():
    """DistributedSampler(3 images, 2 ranks, shuffle=False): rank 0 gets [1, 3], rank 1 gets [2, 1(pad)]."""

    def dets(value):
        return (np.full((1, 4), value), np.array([value]), np.array([1]))

    merged = merge_rank_results([[(1, dets(1.0)), (3, dets(3.0))], [(2, dets(2.0)), (1, dets(9.0))]])
    assert sorted(merged) == [1, 2, 3]
    assert merged[1][1].tolist() == [1.0]  # first occurrence (rank 0) wins


def _random_case(tmp_path, rng, num_images=40, per_image=100):
    """GT with crowds and all size ranges, and per image `per_image` detections, some near a GT box."""
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 360} for i in range(1, num_images + 1)]
    annotations = []
    for image in images:
        for _ in range(int(rng.integers(0, 12))):
            w, h = rng.uniform(4, 200), rng.uniform(4, 150)
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": int(
                rng.choice(LABEL_TO_CATEGORY_ID)), "bbox": [rng.uniform(0, 640 - w), rng.uniform(0, 360 - h), w, h],
                "area": w * h, "iscrowd": int(rng.random() < 0.05)})
    path = tmp_path / "random.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": c, "name": f"c{c}"} for c in LABEL_TO_CATEGORY_ID]}))
    by_image = {i["id"]: [a for a in annotations if a["image_id"] == i["id"]] for i in images}
    preds = {}
    for image_id, gts in by_image.items():
        xyxy = np.column_stack([rng.uniform(0, 600, per_image), rng.uniform(0, 330, per_image)])
        xyxy = np.column_stack([xyxy, xyxy + rng.uniform(2, 150, (per_image, 2))])
        labels = rng.integers(0, len(LABEL_TO_CATEGORY_ID), per_image)
        for k, gt in enumerate(gts[: per_image // 2]):  # jittered copies of the GT boxes
            x, y, w, h = gt["bbox"]
            xyxy[k] = np.asarray([x, y, x + w, y + h]) + rng.normal(0, 3, 4)
            labels[k] = LABEL_TO_CATEGORY_ID.index(gt["category_id"])
        preds[image_id] = {"boxes": torch.tensor(xyxy, dtype=torch.float32),
                           "scores": torch.tensor(rng.uniform(0, 1, per_image), dtype=torch.float32),
                           "labels": torch.tensor(labels)}
    return path, preds


@pytest.mark.parametrize("images", ["seen", "all"])
def test_identical_stats_to_calling_the_backends_directly(tmp_path, images):
    """Many detections, crowds, unseen images: neo's arrays-to-COCOeval path gives exactly the stats of
    faster-coco-eval's and pycocotools' own loadRes on the same detections."""
    from faster_coco_eval import COCO as FasterCOCO
    from faster_coco_eval import COCOeval_faster

    path, preds = _random_case(tmp_path, np.random.default_rng(7))
    seen = sorted(preds)[:-5]  # the last 5 images never shown: they matter for images="all"
    evaluator = CocoEvaluator(path, LABEL_TO_CATEGORY_ID, images=images)
    for start in range(0, len(seen), 8):
        batch = seen[start : start + 8]
        evaluator.update([preds[i] for i in batch], torch.tensor(batch))
    ours = evaluator.compute()
    detections = evaluator.detections()
    assert len(detections) == 100 * len(seen) and ours["AP"] > 0.01
    image_ids = seen if images == "seen" else sorted(preds)
    for coco_cls, eval_cls, kwargs in ((FasterCOCO, COCOeval_faster, {"print_function": lambda *a, **k: None}),
                                       (COCO, COCOeval, {})):
        with contextlib.redirect_stdout(io.StringIO()):
            gt = coco_cls(str(path))
            direct = eval_cls(gt, gt.loadRes(copy.deepcopy(detections)), "bbox", **kwargs)
            direct.params.imgIds = image_ids
            direct.evaluate()
            direct.accumulate()
            direct.summarize()
        assert [ours[name] for name in METRIC_NAMES] == list(direct.stats[:12]), coco_cls.__module__
    pycocotools = CocoEvaluator(path, LABEL_TO_CATEGORY_ID, backend="pycocotools", images=images)
    pycocotools.update([preds[i] for i in seen], seen)
    assert pycocotools.compute() == ours
