"""Synthetic dataset determinism, `neo-data verify` on deliberately broken datasets, the neo-data CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from neo.cli.data import main as neo_data
from neo.data.synth import SHAPES, generate_synthetic_coco
from neo.data.verify import verify_coco


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """The report table at 200 columns, as tests.support.commands gives every command: at rich's default 80 a
    long temporary path (a pytest-xdist worker's) wraps inside the file names the assertions look for."""
    monkeypatch.setenv("COLUMNS", "200")

def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_synth_is_deterministic_for_a_seed(tmp_path):
    kw = {"num_train": 6, "num_val": 3, "size": "320x180", "num_classes": 4}
    generate_synthetic_coco(tmp_path / "a", seed=5, **kw)
    generate_synthetic_coco(tmp_path / "b", seed=5, **kw)
    generate_synthetic_coco(tmp_path / "c", seed=6, **kw)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    doc = json.loads((tmp_path / "a/annotations/instances_train.json").read_text())
    assert [c["name"] for c in doc["categories"]] == list(SHAPES[:4])
    assert len(doc["images"]) == 6 and {(i["width"], i["height"]) for i in doc["images"]} == {(320, 180)}
    assert len(doc["annotations"]) >= 6
    for ann in doc["annotations"]:
        x, y, w, h = ann["bbox"]
        assert w >= 8 and h >= 8 and x >= 0 and y >= 0 and x + w <= 320.01 and y + h <= 180.01
    with pytest.raises(ValueError, match="not 16:9"):
        generate_synthetic_coco(tmp_path / "d", size=[180, 300])


def test_verify_passes_a_clean_dataset_and_cli_exits_zero(tmp_path, capsys):
    assert neo_data(["synth", str(tmp_path), "--train", "3", "--val", "2", "--size", "320x180", "--seed", "1"]) == 0
    report = verify_coco(tmp_path / "annotations/instances_train.json", tmp_path / "train")
    assert report.ok and report.images == 3 and report.errors == []
    assert neo_data(["verify", str(tmp_path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_verify_finds_every_kind_of_breakage(tmp_path, capsys, coco_writer):
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 36},
              {"id": 1, "file_name": "dup.jpg", "width": 64, "height": 36},
              {"id": 2, "file_name": "missing.jpg", "width": 64, "height": 36},
              {"id": 3, "file_name": "corrupt.jpg", "width": 64, "height": 36}]
    anns = [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 10, 10], "iscrowd": 0},
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 0, 10], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 42, "bbox": [1, 1, 5, 5], "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 3, "bbox": [100, 1, 5, 5], "iscrowd": 0},
            {"id": 4, "image_id": 99, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 0}]
    image_dir, ann = coco_writer(tmp_path, images, anns)
    (image_dir / "missing.jpg").unlink()
    (image_dir / "corrupt.jpg").write_bytes(b"\xff\xd8garbage")
    report = verify_coco(ann, image_dir)
    assert not report.ok
    assert report.problems == {"duplicate image id": 1, "duplicate annotation id": 1, "bad box": 2,
                               "unknown category": 1, "unknown image": 1, "missing image": 1, "corrupt image": 1}
    assert any("category_id 42" in e for e in report.errors) and any("missing.jpg" in e for e in report.errors)
    assert neo_data(["verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "corrupt.jpg" in out
    (tmp_path / "annotations/instances_train.json").write_text("{not json")
    assert not verify_coco(ann, image_dir).ok
    assert neo_data(["verify", str(tmp_path / "empty")]) == 1  # no annotation files at all: a user error ...
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("neo-data verify: ") and "holds no annotations/instances_*.json. Fix: pass" in err  # ... on stderr


def test_verify_prints_images_and_instances_per_class(tmp_path, capsys, coco_writer):
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 36} for i in (1, 2, 3)]
    anns = [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 10, 10], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [20, 1, 10, 10], "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [1, 1, 10, 10], "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 3, "bbox": [1, 1, 30, 30], "iscrowd": 1}]  # crowd: not counted
    image_dir, ann = coco_writer(tmp_path, images, anns)
    report = verify_coco(ann, image_dir)
    names = {c["id"]: c["name"] for c in json.loads(ann.read_text())["categories"]}
    assert report.per_class[names[3]] == (2, 3)  # 2 images, 3 instances
    assert all(v == (0, 0) for k, v in report.per_class.items() if k != names[3])  # every class listed
    assert list(report.per_class)[0] == names[3]  # most instances first
    assert neo_data(["verify", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("│ " + names[3]))
    assert [c.strip() for c in row.split("│")[1:-1]] == [names[3], "2", "3"]
    assert "per class" in out and "instances" in out and "…" not in out


def test_verify_messages_keep_their_brackets(tmp_path, capsys, coco_writer):
    """Rich markup must not swallow "[x, y, w, h]" or a bracketed file name in a message."""
    images = [{"id": 1, "file_name": "[cam 1] a.jpg", "width": 64, "height": 36}]
    anns = [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 10], "iscrowd": 0}]
    image_dir, ann = coco_writer(tmp_path, images, anns)
    (image_dir / "[cam 1] a.jpg").unlink(missing_ok=True)
    assert neo_data(["verify", str(tmp_path)]) == 1
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines: compare with spaces normalised
    assert "is not [x, y, w, h]" in out
    assert "[cam 1] a.jpg" in out
