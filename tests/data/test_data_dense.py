"""Dense one-to-one data (DEIM): mosaic and mixup at 16:9 sizes, boxes valid, counts adding up, the epoch range,
and the settings' errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neo.config_problems import SettingsError
from neo.data.coco import CocoDetection
from neo.data.datamodule import NeoDataModule
from neo.data.dense import NO_LETTERBOX, DenseAugment, blend, mosaic_tiles
from neo.data.sampler import EpochShuffleSampler, MultiScaleBatchSampler
from neo.data.settings import data_problems
from neo.data.transforms import DetectionTransform

SIZE = (180, 320)  # (H, W), 16:9


def _sample(h: int, w: int, boxes: list[list[float]], grey: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.full((h, w, 3), grey, dtype=np.uint8)
    return image, np.array(boxes, dtype=np.float32).reshape(-1, 4), np.arange(len(boxes), dtype=np.int64)


def _four():
    """Four 16:9 images (one 4:3) with 1, 2, 0 and 3 boxes."""
    return [
        _sample(360, 640, [[100, 50, 300, 250]], 10),
        _sample(180, 320, [[0, 0, 64, 36], [200, 100, 320, 180]], 20),
        _sample(90, 160, [], 30),
        _sample(300, 400, [[0, 0, 400, 300], [10, 10, 50, 50], [350, 250, 390, 290]], 40),
    ]


def test_mosaic_tiles_put_one_image_per_quadrant_with_its_boxes():
    canvas, boxes, labels = mosaic_tiles(_four(), SIZE)
    assert canvas.shape == (180, 320, 3) and canvas.dtype == np.uint8
    assert len(boxes) == len(labels) == 1 + 2 + 0 + 3
    # 16:9 tiles fill their quadrant exactly; the 4:3 one is letterboxed (fill 0 at its sides)
    assert (canvas[:90, :160] == 10).all() and (canvas[:90, 160:] == 20).all() and (canvas[90:, :160] == 30).all()
    assert canvas[90:, 160:][:, 0].max() == 0 and (canvas[90:, 160:][:, 80] == 40).all()
    np.testing.assert_allclose(boxes[0], [25, 12.5, 75, 62.5])  # 640x360 -> 160x90: a quarter
    np.testing.assert_allclose(boxes[2], [160 + 100, 50, 160 + 160, 90])  # top-right quadrant
    x0, y0 = 160 + (160 - 120) // 2, 90  # 400x300 -> 120x90 centred in the bottom-right quadrant
    np.testing.assert_allclose(boxes[3], [x0, y0, x0 + 120, y0 + 90])
    assert labels.tolist() == [0, 0, 1, 0, 1, 2]


def test_mosaic_needs_four_images():
    with pytest.raises(ValueError, match="4 images, got 3"):
        mosaic_tiles(_four()[:3], SIZE)


@pytest.mark.parametrize("seed", range(6))
def test_the_random_affine_keeps_the_size_and_only_valid_boxes(seed: int):
    dense = DenseAugment(min_box_size=2.0)
    canvas, boxes, labels = dense.mosaic(_four(), (360, 640), seed)
    assert canvas.shape == (360, 640, 3) and len(boxes) == len(labels) <= 6
    assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= 640).all()
    assert (boxes[:, [1, 3]] >= 0).all() and (boxes[:, [1, 3]] <= 360).all()
    assert ((boxes[:, 2] - boxes[:, 0]) >= 2.0).all() and ((boxes[:, 3] - boxes[:, 1]) >= 2.0).all()


def test_a_zoomed_out_affine_moves_the_boxes_and_the_seed_repeats_it():
    dense = DenseAugment(rotate=0.0, translate=0.0, scale=(0.5, 0.5))
    canvas, boxes, _ = dense.mosaic(_four(), SIZE, 3)
    assert canvas.shape == (180, 320, 3) and len(boxes) == 6  # a zoom-out keeps every box
    np.testing.assert_allclose(boxes[0], [80 + 25 / 2, 45 + 12.5 / 2, 80 + 75 / 2, 45 + 62.5 / 2], atol=0.6)
    again = dense.mosaic(_four(), SIZE, 3)
    assert (again[0] == canvas).all() and np.array_equal(again[1], boxes)


def test_blend_mixes_pixels_and_keeps_both_box_sets():
    a = (np.full((180, 320, 3), 200, np.uint8), np.array([[0, 0, 10, 10]], np.float32), np.array([1]), NO_LETTERBOX)
    b = (np.full((180, 320, 3), 100, np.uint8), np.array([[5, 5, 20, 20], [1, 1, 9, 9]], np.float32),
         np.array([2, 0]), NO_LETTERBOX)
    image, boxes, labels, params = blend(a, b, 0.5)
    assert image.shape == (180, 320, 3) and (image == 150).all()
    assert boxes.shape == (3, 4) and labels.tolist() == [1, 2, 0] and params is NO_LETTERBOX


def _dataset(synth_root: Path, dense: DenseAugment | None) -> CocoDetection:
    transform = DetectionTransform(train=True, zoom_out_p=0.0, iou_crop_p=0.0)  # no crop: no box lost
    return CocoDetection(synth_root / "train", synth_root / "annotations/instances_train.json", size="320x180",
                         transform=transform, dense=dense)


IDENTITY = {"rotate": 0.0, "translate": 0.0, "scale": (1.0, 1.0)}


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_dense_item_holds_the_boxes_of_its_mosaic_and_its_mixup_partner(synth_root: Path, seed: int):
    dense = DenseAugment(mosaic_prob=1.0, mixup_prob=1.0, **IDENTITY)
    ds = _dataset(synth_root, dense)
    count = [len(ds.annotations(i)[1]) for i in range(len(ds))]
    plan = dense.plan(seed, len(ds))
    partner = dense.plan(plan.partner_seed, len(ds))
    expected = count[5] + sum(count[i] for i in plan.partners) + count[plan.mixup] + sum(
        count[i] for i in partner.partners)
    image, target = ds[(5, SIZE, True, seed, True)]
    assert image.shape == (3, 180, 320) and image.dtype == torch.uint8
    assert len(target["labels"]) == len(target["boxes"]) == expected > count[5]
    assert (target["boxes"] >= 0).all() and (target["boxes"][:, :2] <= 1).all()
    assert target["letterbox"].tolist() == NO_LETTERBOX.tolist()


def test_a_dense_item_is_a_function_of_its_key(synth_root: Path):
    """Resume and the worker layout rely on it: the same (index, size, heavy, seed, dense) gives the same item."""
    ds = _dataset(synth_root, DenseAugment(mosaic_prob=1.0, mixup_prob=1.0))
    first, again, other = ds[(2, SIZE, True, 99, True)], ds[(2, SIZE, True, 99, True)], ds[(2, SIZE, True, 98, True)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1]["boxes"], again[1]["boxes"])
    assert not torch.equal(first[0], other[0])


def test_a_sample_not_marked_dense_is_the_plain_one(synth_root: Path):
    plain, dense = _dataset(synth_root, None), _dataset(synth_root, DenseAugment(mosaic_prob=1.0))
    a, ta = plain[(3, SIZE, True, 7)]
    b, tb = dense[(3, SIZE, True, 7, False)]
    assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"])


def test_mosaic_only_and_mixup_only(synth_root: Path):
    count_of = lambda ds: [len(ds.annotations(i)[1]) for i in range(len(ds))]  # noqa: E731
    mosaic = DenseAugment(mosaic_prob=1.0, mixup_prob=0.0, **IDENTITY)
    ds = _dataset(synth_root, mosaic)
    count, plan = count_of(ds), mosaic.plan(4, len(ds))
    assert plan.mixup is None and len(plan.partners) == 3
    assert len(ds[(0, SIZE, True, 4, True)][1]["labels"]) == count[0] + sum(count[i] for i in plan.partners)
    mixup = DenseAugment(mosaic_prob=0.0, mixup_prob=1.0)
    ds = _dataset(synth_root, mixup)
    plan = mixup.plan(4, len(ds))
    assert plan.partners == () and 0.45 <= plan.beta <= 0.55
    assert len(ds[(0, SIZE, True, 4, True)][1]["labels"]) == count[0] + count[plan.mixup]


def _flags(dense_epochs, epochs: int = 6) -> list[bool]:
    sampler = MultiScaleBatchSampler(EpochShuffleSampler(8), 4, True, sizes=[SIZE], no_aug_epochs=1,
                                     max_epochs=epochs, dense_epochs=dense_epochs)
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert all(len(item) == 5 for batch in batches for item in batch)
        marks = {item[4] for batch in batches for item in batch}
        assert len(marks) == 1 and marks <= {sampler.dense}
        out.append(marks.pop())
    return out


def test_the_sampler_marks_the_dense_epochs_only_while_heavy_augmentation_is_on():
    assert _flags((1, 3)) == [False, True, True, False, False, False]
    assert _flags((2, None)) == [False, False, True, True, True, False]  # the last (no-aug) epoch stays plain
    assert _flags((0, 10)) == [True] * 5 + [False]
    assert _flags((1, 0.5)) == [False, True, True, False, False, False]  # the first half of the 6 epochs
    plain = MultiScaleBatchSampler(EpochShuffleSampler(8), 4, True, sizes=[SIZE])
    assert all(len(item) == 4 for batch in plain for item in batch)


def test_the_datamodule_serves_mosaics_in_the_dense_epochs(synth_root: Path):
    dm = NeoDataModule(root=synth_root, train_images=synth_root / "train",
                       train_annotations=synth_root / "annotations/instances_train.json",
                       val_images=synth_root / "val", val_annotations=synth_root / "annotations/instances_val.json",
                       resolution="320x180", train_scales=[1.0], batch_size=4, no_aug_epochs=1, max_epochs=3,
                       dense={"mosaic_prob": 1.0, "mixup_prob": 0.0, "epochs": [0, None], **IDENTITY})
    ds = dm._dataset("train")
    count = {int(ds.ids[i]): len(ds.annotations(i)[1]) for i in range(len(ds))}  # image id -> its boxes
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 180, 320)
    # a mosaic of every item: its own boxes and at least one of each of the three others (every image has one)
    assert all(len(t["labels"]) >= count[int(t["image_id"])] + 3 for t in targets)
    dm.set_epoch(2)  # the no-aug epoch: plain images
    images, targets = next(iter(dm.train_dataloader()))
    assert [len(t["labels"]) for t in targets] == [count[int(t["image_id"])] for t in targets]


@pytest.mark.parametrize(("dense", "message"), [
    ({"mosaic_prob": 1.5}, "data.dense.mosaic_prob=1.5 must be a probability in [0, 1]"),
    ({"mixup_prob": "half"}, "data.dense.mixup_prob='half' must be a probability"),
    ({"epochs": [5, 2]}, "data.dense.epochs=[5, 2] must be [start, stop]"),
    ({"epochs": 4}, "data.dense.epochs=4 must be [start, stop]"),
    ({"epochs": [-1, None]}, "data.dense.epochs=[-1, None] must be"),
    ({"epochs": [0, 1.5]}, "data.dense.epochs=[0, 1.5] must be"),
    ({"scale": [1.5, 0.5]}, "data.dense.scale=[1.5, 0.5] must be [low, high]"),
    ({"translate": 0.7}, "data.dense.translate=0.7 must be a fraction"),
    ({"rotate": -3}, "data.dense.rotate=-3 must be degrees"),
    ({"mosaic_p": 0.5}, "mosaic_prob"),
    ("on", "data.dense='on' must be null (off) or a mapping"),
])
def test_bad_dense_settings_are_named_with_a_fix(dense, message: str):
    problems = data_problems({"dense": dense})
    assert len(problems) == 1 and message in problems[0] and "Fix:" in problems[0], problems
    with pytest.raises(SettingsError, match="data.dense"):
        NeoDataModule(root="r", train_images="t", train_annotations="t.json", val_images="v",
                      val_annotations="v.json", dense=dense)


def test_good_dense_settings_pass():
    assert data_problems({"dense": None}) == []
    assert data_problems({"dense": {"mosaic_prob": 0.5, "mixup_prob": 0.0, "epochs": [4, 29], "rotate": 10,
                                    "translate": 0.1, "scale": [0.5, 1.5]}}) == []
