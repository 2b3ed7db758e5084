"""Data faults through real training runs (tiny RT-DETR): a corrupt JPEG, malformed annotation JSON, zero
annotations, boxes outside the image (or not finite), a 1x1 image, an image whose size contradicts the JSON.

Each is either survived (trained on, with a warning that says what was dropped or skipped) or refused
with an error that names the file and the fix — as ``data.on_bad_image`` says for unreadable images.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from neo.data.coco import CocoDetection, CorruptImageError, DatasetError
from neo.training.run import train
from tests.conftest import train_overrides
from tests.faults.conftest import assert_nothing_lost
from tests.training.helpers import compose_train

CATEGORIES = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]


def image(i: int, width: int = 320, height: int = 180) -> dict:
    return {"id": i, "file_name": f"{i}.jpg", "width": width, "height": height}


def box(i: int, image_id: int, bbox: list, category: int = 1) -> dict:
    return {"id": i, "image_id": image_id, "category_id": category, "bbox": bbox, "area": 100.0, "iscrowd": 0}


def dataset(root: Path, train_images: list[dict], train_boxes: list[dict], *, val_boxes: bool = True,
            pixels: dict[str, tuple[int, int]] | None = None) -> Path:
    """A COCO dataset in the layout of conf/data/synthetic.yaml: noise JPEGs of the listed (or ``pixels``) sizes."""
    rng = np.random.default_rng(0)
    val_images = [image(100), image(101)]
    splits = {"train": (train_images, train_boxes),
              "val": (val_images, [box(100, 100, [40, 30, 80, 60]), box(101, 101, [100, 50, 60, 90], 2)] if val_boxes
                      else [])}
    for split, (images, boxes) in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for record in images:
            h, w = (pixels or {}).get(record["file_name"], (record["height"], record["width"]))
            cv2.imwrite(str(root / split / record["file_name"]), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        (root / "annotations").mkdir(exist_ok=True)
        (root / f"annotations/instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": boxes, "categories": CATEGORIES}))
    return root


def four_images(root: Path, **kwargs) -> Path:
    """4 train images (2 batches of 2: every image is read in one epoch), one box each."""
    boxes = [box(i, i, [20 + 10 * i, 20, 80, 60], 1 + i % 3) for i in range(4)]
    return dataset(root, [image(i) for i in range(4)], boxes, **kwargs)


def fit(root: Path, out: Path, *extra: str):
    cfg = compose_train(train_overrides(root, out, "model=tiny", "data.batch_size=2", "trainer.max_epochs=1",
                                        "trainer.limit_val_batches=1", "logger=none", "callbacks.ema=null", *extra))
    return train(cfg)


def checkpoints(out: Path) -> Path:
    return out / "outputs/runs/default/checkpoints"


# ------------------------------------------------------------------ unreadable images
@pytest.mark.parametrize("policy", ["skip", "error"])
def test_corrupt_jpeg_is_skipped_with_a_warning_or_stops_naming_the_file(tmp_path, caplog, policy):
    root = four_images(tmp_path / "data")
    (root / "train/2.jpg").write_bytes(b"\xff\xd8\xff\xe0 half a jpeg")
    with caplog.at_level(logging.WARNING):
        if policy == "skip":
            summary = fit(root, tmp_path, "data.on_bad_image=skip")
            assert summary.status == "finished" and summary.steps == 2
            assert f"skipping: image file cannot be decoded (corrupt or not an image): {root}/train/2.jpg" in caplog.text
        else:
            with pytest.raises(CorruptImageError, match=rf"cannot be decoded .*: {root}/train/2.jpg \(set "
                                                        rf"data.on_bad_image=skip to skip such images\)"):
                fit(root, tmp_path, "data.on_bad_image=error")
    assert_nothing_lost(checkpoints=(checkpoints(tmp_path),))  # interrupted.ckpt too, if a step had run


@pytest.mark.parametrize("policy", ["skip", "error"])
def test_image_whose_size_contradicts_the_json(tmp_path, caplog, policy):
    """The file is 1x1 but the JSON says 320x180: its boxes cannot be placed, so it is a bad image."""
    root = four_images(tmp_path / "data", pixels={"1.jpg": (1, 1)})
    message = (f"image file is 1x1 (h x w) but instances_train.json says 180x320, so its boxes would be misplaced: "
               f"{root}/train/1.jpg")
    with caplog.at_level(logging.WARNING):
        if policy == "skip":
            assert fit(root, tmp_path, "data.on_bad_image=skip").status == "finished"
            assert f"skipping: {message}" in caplog.text
        else:
            with pytest.raises(CorruptImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
                fit(root, tmp_path, "data.on_bad_image=error")
    assert_nothing_lost(checkpoints=(checkpoints(tmp_path),))


# ------------------------------------------------------------------ annotation files
MALFORMED = {
    "truncated JSON": (lambda text: text[: len(text) // 2], r"is not valid JSON \(.*: line 1, column \d+\): it may be "
                                                            r"truncated"),
    "a list, not an object": (lambda text: json.dumps([json.loads(text)]), r"is not a COCO detection file"),
    "bbox of 3 numbers": (lambda text: text.replace("[20, 20, 80, 60]", "[20, 20, 80]"),
                          r"annotation id 0 on image 0 has bbox \[20, 20, 80\]; COCO boxes are \[x, y, width, height\]"),
    "image without size": (lambda text: text.replace('"width": 320, "height": 180}, {"id": 1',
                                                     '"height": 180}, {"id": 1'),
                           r"1 image record\(s\) lack a positive integer width/height \(e.g. id 0"),
}


@pytest.mark.parametrize("fault", list(MALFORMED))
def test_malformed_annotation_json_is_named(tmp_path, fault):
    root = four_images(tmp_path / "data")
    ann = root / "annotations/instances_train.json"
    corrupt, expected = MALFORMED[fault]
    ann.write_text(corrupt(ann.read_text()))
    with pytest.raises(DatasetError, match=expected) as info:
        fit(root, tmp_path)
    assert str(ann) in str(info.value) and ("neo-data verify" in str(info.value))
    assert not checkpoints(tmp_path).exists()  # refused before training: nothing to lose


def test_zero_annotations_in_the_train_split_is_refused(tmp_path):
    root = dataset(tmp_path / "data", [image(i) for i in range(4)], [])
    with pytest.raises(DatasetError, match=r"instances_train.json has 4 images but no usable annotations: training would "
                                         r"learn nothing\. Fix: point data.train_annotations at the annotated file"):
        fit(root, tmp_path)
    assert not checkpoints(tmp_path).exists()


def test_zero_annotations_in_the_val_split_trains_with_a_warning(tmp_path, caplog):
    root = four_images(tmp_path / "data", val_boxes=False)
    with caplog.at_level(logging.WARNING):
        summary = fit(root, tmp_path)
    assert summary.status == "finished" and summary.metrics.get("AP") == 0.0
    assert "instances_val.json has no usable annotations: its AP is undefined (reported as 0)" in caplog.text
    assert_nothing_lost(checkpoints=(checkpoints(tmp_path),))


# ------------------------------------------------------------------ boxes
def test_boxes_outside_the_image_are_clipped_or_dropped(tmp_path, caplog):
    boxes = [
        box(0, 0, [300, 150, 100, 100]),                  # half outside: clipped to [300, 150, 320, 180]
        box(1, 1, [400, 10, 30, 30]),                     # right of the image: dropped
        box(2, 1, [-500, -500, 100000, 100000], 2),       # covers everything: clipped to the whole image
        box(3, 2, [50, 50, -40, 30]),                     # negative width: dropped
        box(4, 2, [float("nan"), 10, 30, 30]),           # not a number: dropped (albumentations raised before)
        box(5, 3, [10, 10, float("inf"), 30], 3),        # infinite: dropped
        box(6, 3, [60, 40, 50, 50], 3),                   # fine
    ]
    root = dataset(tmp_path / "data", [image(i) for i in range(4)], boxes)
    with caplog.at_level(logging.WARNING):
        summary = fit(root, tmp_path)
    assert summary.status == "finished" and summary.steps == 2  # losses stayed finite
    assert "instances_train.json: dropped 4 degenerate boxes" in caplog.text
    ds = CocoDetection(root / "train", root / "annotations/instances_train.json", size="320x180")
    assert ds.num_boxes == 3
    assert ds.annotations(0)[0].tolist() == [[300.0, 150.0, 320.0, 180.0]]
    assert ds.annotations(1)[0].tolist() == [[0.0, 0.0, 320.0, 180.0]]
    assert ds.annotations(2)[0].shape == (0, 4)  # a negative now
    assert_nothing_lost(checkpoints=(checkpoints(tmp_path),))


def test_one_pixel_images_train(tmp_path, caplog):
    images = [image(0, 1, 1), image(1, 1, 1), image(2), image(3)]
    boxes = [box(0, 0, [0, 0, 1, 1]), box(1, 1, [0, 0, 5, 5]), box(2, 2, [20, 20, 80, 60]), box(3, 3, [50, 40, 60, 60])]
    root = dataset(tmp_path / "data", images, boxes)
    ds = CocoDetection(root / "train", root / "annotations/instances_train.json", size="320x180")
    canvas, target = ds[0]  # 1x1 letterboxed into the 320x180 canvas; its 1x1 box follows
    assert tuple(canvas.shape) == (3, 180, 320) and target["boxes"].shape == (1, 4)
    assert target["letterbox"].tolist() == [180.0, 180.0, 70.0, 0.0]
    with caplog.at_level(logging.WARNING):
        summary = fit(root, tmp_path)
    assert summary.status == "finished" and summary.steps == 2
    assert_nothing_lost(checkpoints=(checkpoints(tmp_path),))
