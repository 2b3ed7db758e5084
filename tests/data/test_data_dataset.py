"""CocoDetection and NeoDataModule on generated COCO sets: crowd, degenerate and negative images."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from neo.data.coco import CocoDetection, CorruptImageError
from neo.data.collate import collate_detection
from neo.data.datamodule import NeoDataModule
from neo.data.sampler import EpochShuffleSampler, MultiScaleBatchSampler


def test_targets_contract_labels_crowd_degenerate_negative(small_coco, caplog):
    image_dir, ann = small_coco
    with caplog.at_level(logging.WARNING):
        ds = CocoDetection(image_dir, ann, size=(360, 640))
    assert ds.label_to_category_id == [3, 7, 12] and ds.class_names == ["cat3", "cat7", "cat12"]
    assert ds.num_degenerate_dropped == 2  # zero width (id 4) + fully outside (id 7)
    assert "dropped 2 degenerate boxes" in caplog.text
    image, t = ds[0]  # image 10: 320x180 -> 640x360, scale exactly 2
    assert image.shape == (3, 360, 640) and image.dtype == torch.uint8
    assert t["labels"].tolist() == [0, 2]  # crowd (id 3) excluded, category 12 -> label 2
    expect = torch.tensor([[0.2, 0.2, 0.2, 0.2],  # (32+32, 18+18) * 2 / (640, 360): cx, cy, w, h normalised
                           [(160 + 40) * 2 / 640, (90 + 22.5) * 2 / 360, 160 / 640, 90 / 360]])
    torch.testing.assert_close(t["boxes"], expect)
    assert t["image_id"].item() == 10 and t["image_id"].dtype == torch.int64
    assert t["orig_size"].tolist() == [180, 320]
    assert t["letterbox"].tolist() == [2.0, 2.0, 0.0, 0.0] and t["letterbox"].dtype == torch.float32
    _, t4x3 = ds[1]  # 200x150 (4:3) -> letterboxed into 640x360: scale 2.4, pad_x 80
    assert t4x3["letterbox"].tolist() == pytest.approx([2.4, 2.4, 80.0, 0.0])
    _, neg = ds[2]
    assert neg["boxes"].shape == (0, 4) and neg["labels"].shape == (0,)
    _, clipped = ds[3]  # box [300, 100, 50, 100] clipped to x<=320, y<=180
    assert clipped["labels"].tolist() == [1]
    torch.testing.assert_close(clipped["boxes"][0] * torch.tensor([640, 360, 640, 360]),
                               torch.tensor([620.0, 280.0, 40.0, 160.0]))


def test_bad_inputs_have_clear_errors(small_coco, tmp_path):
    image_dir, ann = small_coco
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoDetection(image_dir, tmp_path / "nope.json")
    with pytest.raises(ValueError, match=r"size=\[360, 600\].*not 16:9"):
        CocoDetection(image_dir, ann, size=[360, 600])
    (image_dir / "b.jpg").write_bytes(b"not a jpeg")
    strict = CocoDetection(image_dir, ann, on_bad_image="error")
    with pytest.raises(CorruptImageError, match="cannot be decoded.*b.jpg"):
        strict[1]
    lenient = CocoDetection(image_dir, ann, on_bad_image="skip")
    assert lenient[1][1]["image_id"].item() == 12  # corrupt b.jpg replaced by the next image, with a warning
    (image_dir / "neg.jpg").unlink()
    with pytest.raises(CorruptImageError, match="1 image file.*missing.*neg.jpg.*on_bad_image=skip"):
        CocoDetection(image_dir, ann, on_bad_image="error")
    lenient = CocoDetection(image_dir, ann, on_bad_image="skip")
    assert lenient.ids.tolist() == [10, 11, 13]  # the missing file is left out up front
    doc = ann.read_text().replace('"category_id": 12', '"category_id": 99')
    ann.write_text(doc)
    with pytest.raises(ValueError, match="category_id 99"):
        CocoDetection(image_dir, ann, on_bad_image="skip")
    ann.write_text('{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(ValueError, match="empty"):
        CocoDetection(image_dir, ann)


def test_multiscale_sampler_one_size_per_batch_and_no_aug_epochs():
    sizes = [(270, 480), (360, 640), (450, 800)]
    bs = MultiScaleBatchSampler(EpochShuffleSampler(40, seed=1), 4, True, sizes=sizes, final_size=(360, 640),
                                no_aug_epochs=2, max_epochs=10, seed=1)
    batches = list(bs)
    assert len(batches) == 10 and all(len({(s, h) for _, s, h, _ in b}) == 1 for b in batches)
    assert {b[0][1] for b in batches} > {(360, 640)}  # several sizes used
    assert batches == list(bs)  # same epoch -> same sizes, order and seeds
    bs.sampler.set_epoch(3)  # what Lightning's fit loop does
    assert bs.epoch == 3 and list(bs) != batches
    bs.set_epoch(8)  # last 2 of 10 epochs: single size, heavy off
    assert all(item[1] == (360, 640) and item[2] is False for b in bs for item in b)
    assert sorted(i for b in batches for i, *_ in b) == list(range(40))


def _dm(root: Path, **kw) -> NeoDataModule:
    return NeoDataModule(root=root, train_images=root / "train", train_annotations=root / "annotations/instances_train.json",
                         val_images=root / "val", val_annotations=root / "annotations/instances_val.json", **kw)


def test_datamodule_generates_synthetic_and_serves_contract_batches(tmp_path):
    dm = _dm(tmp_path / "syn", num_classes=3, resolution=[180, 320], batch_size=3,
             train_scales=[0.8, 1.0, 1.2], no_aug_epochs=1, max_epochs=3,
             synthetic={"num_train": 9, "num_val": 4, "size": "320x180", "num_classes": 3})
    dm.prepare_data()
    dm.setup("fit")
    assert (dm.num_classes, dm.class_names, dm.label_to_category_id) == (3, ["circle", "rectangle", "triangle"], [1, 2, 3])
    assert dm.val_annotation_file == dm.test_annotation_file == tmp_path / "syn/annotations/instances_val.json"
    assert dm.train_sizes == [(144, 256), (180, 320), (216, 384)]
    shapes = set()
    for images, targets in dm.train_dataloader():
        assert images.dtype == torch.uint8 and images.shape[0] == 3 and len(targets) == 3
        shapes.add(tuple(images.shape[2:]))
        for t in targets:
            assert t["boxes"].dtype == torch.float32 and ((t["boxes"] >= 0) & (t["boxes"] <= 1)).all()
            assert t["labels"].dtype == torch.int64 and t["labels"].max() < 3
    assert shapes <= set(dm.train_sizes)
    dm.set_epoch(2)  # last epoch -> eval size only
    assert {tuple(im.shape[2:]) for im, _ in dm.train_dataloader()} == {(180, 320)}
    images, targets = next(iter(dm.val_dataloader()))
    assert images.shape == (3, 3, 180, 320) and targets[0]["letterbox"].tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="data.num_classes=5"):
        _dm(tmp_path / "syn", num_classes=5).setup("validate")


def test_datamodule_with_workers_and_collate_errors(tmp_path):
    dm = _dm(tmp_path / "syn", batch_size=2, num_workers=1, persistent_workers=True, prefetch_factor=2,
             resolution="640x360", synthetic={"num_train": 4, "num_val": 2, "size": "320x180"})
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.prefetch_factor == 2
    assert sum(im.shape[0] for im, _ in loader) == 4
    with pytest.raises(ValueError, match="mixes image sizes"):
        collate_detection([(torch.zeros(3, 4, 8, dtype=torch.uint8), {}), (torch.zeros(3, 9, 16, dtype=torch.uint8), {})])


def test_data_configs_compose_validate_and_instantiate(tmp_path):
    with initialize_config_module(version_base="1.3", config_module="conf"):
        coco = compose(overrides=["+data=coco", "+paths=default"])
        assert coco.data.num_classes == 80 and coco.data.root.endswith("data/coco")
        assert coco.data.train_annotations.endswith("coco/annotations/instances_train2017.json")
        syn = compose(overrides=["+data=synthetic", "+paths=default", f"paths.data_dir={tmp_path}",
                                 "data.resolution=720p", "data.synthetic.num_train=4", "data.synthetic.num_val=2",
                                 "data.num_workers=0"])
        dm = instantiate(syn.data)
        assert dm.eval_size == (720, 1280) and (720, 1280) in dm.train_sizes
        dm.prepare_data()
        assert dm.num_classes == syn.data.num_classes == 5
        bad = compose(overrides=["+data=synthetic", "+paths=default", "data.train_sizes=[[720,1280],[700,1280]]"])
        with pytest.raises(Exception, match=r"data.train_sizes\[1\]=\[700, 1280\].*Nearest valid 16:9 size: 1280x720"):
            instantiate(bad.data)
