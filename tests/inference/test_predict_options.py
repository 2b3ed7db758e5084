"""neo-predict's options a user relies on: the thread default (no oversubscription), NMS to merge
duplicates, the progress bar with images/s, and clear refusals of bad values (nothing written)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import pytest
import torch
from hydra import compose, initialize_config_module
from rich.console import Console
from torchvision.ops import box_iou

from neo.cli.predict import run as predict_cli
from neo.inference.predict import predict_source
from neo.inference.threads import available_cores, free_cores, parse_threads


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint) -> Path:
    """The session's tiny trained checkpoint (2 steps: it stacks boxes on one spot, which NMS must merge)."""
    return tiny_checkpoint


@pytest.fixture
def keep_threads():
    """Predict sets the process's torch/OpenCV threads: put the suite's settings back afterwards."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


def _cfg(checkpoint, source, out, *extra):
    with initialize_config_module(version_base="1.3", config_module="conf"):
        return compose(config_name="predict", overrides=[f"checkpoint={checkpoint}", f"source={source}",
                                                         f"output_dir={out}", f"paths.root_dir={out}", *extra])


def test_free_cores_follows_the_load():
    assert free_cores(cores=2, load=11.0) == 1  # a busy shared machine: one thread, no oversubscription
    assert free_cores(cores=2, load=0.1) == 2  # idle: every core
    assert free_cores(cores=8, load=3.4) == 5
    assert free_cores(cores=4, load=0.0) == 4
    assert 1 <= free_cores() <= available_cores()


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", ""])
def test_bad_thread_counts_are_refused_by_name(value):
    with pytest.raises(ValueError, match=rf"threads='{value}' is not a thread count: use auto"):
        parse_threads(value)
    assert parse_threads("3") == 3 and parse_threads(None) == free_cores()


def test_default_threads_are_free_cores_for_torch_and_one_for_opencv(checkpoint, synth_root, tmp_path,
                                                                     keep_threads):
    torch.set_num_threads(available_cores() + 3)  # oversubscribed before the command runs
    cv2.setNumThreads(available_cores())
    result = predict_source(_cfg(checkpoint, synth_root / "val", tmp_path / "out", "progress=false", "draw=false"))
    assert result["threads"] == torch.get_num_threads() == free_cores()
    assert cv2.getNumThreads() == 1
    result = predict_source(_cfg(checkpoint, synth_root / "val", tmp_path / "out1", "progress=false", "draw=false",
                                 "threads=1"))
    assert result["threads"] == torch.get_num_threads() == 1


def _same_class_overlaps(record, iou: float) -> int:
    detections = record["detections"]
    if len(detections) < 2:
        return 0
    boxes = torch.tensor([d["bbox_xyxy"] for d in detections], dtype=torch.float32)
    labels = torch.tensor([d["label"] for d in detections])
    overlap = box_iou(boxes, boxes) > iou
    same = labels[:, None] == labels[None, :]
    return int((overlap & same).triu(diagonal=1).sum())


def test_nms_option_merges_duplicates(checkpoint, synth_root, tmp_path, keep_threads):
    plain = predict_source(_cfg(checkpoint, synth_root / "val", tmp_path / "plain", "progress=false", "draw=false",
                                "score_threshold=0.0", "threads=1"))
    merged = predict_source(_cfg(checkpoint, synth_root / "val", tmp_path / "nms", "progress=false", "draw=false",
                                 "score_threshold=0.0", "threads=1", "nms_iou=0.3"))
    before = json.loads(Path(plain["predictions_file"]).read_text())
    after = json.loads(Path(merged["predictions_file"]).read_text())
    assert before["nms_iou"] is None and after["nms_iou"] == 0.3 and merged["nms_iou"] == 0.3
    # a briefly trained RT-DETR stacks boxes on one spot; NMS leaves no same-class pair above the IoU
    assert sum(_same_class_overlaps(r, 0.3) for r in before["images"]) > 0
    assert sum(_same_class_overlaps(r, 0.3 + 1e-4) for r in after["images"]) == 0
    assert merged["detections"] < plain["detections"]
    assert len(after["images"]) == len(before["images"])  # every image still reported


@pytest.mark.parametrize(("key", "value", "message"), [
    ("nms_iou", "1.5", "is not an IoU"), ("nms_iou", "0", "is not an IoU"), ("nms_iou", "half", "is not an IoU"),
    ("threads", "0", "is not a thread count"), ("threads", "many", "is not a thread count"),
])
def test_bad_option_exits_1_naming_it_and_writes_nothing(checkpoint, synth_root, tmp_path, capsys, key, value,
                                                         message, keep_threads):
    out = tmp_path / "out"
    other = "threads=1" if key != "threads" else "nms_iou=null"
    assert predict_cli(_cfg(checkpoint, synth_root / "val", out, f"{key}={value}", other)) == 1
    err = capsys.readouterr().err
    assert re.search(rf"{key}='?{value}'? {message}", err), err
    assert f"e.g. {key}=" in err and "Traceback" not in err
    assert not out.exists()


def test_progress_bar_counts_images_and_speed(checkpoint, synth_root, tmp_path, keep_threads):
    console = Console(record=True, width=120, force_terminal=False)
    result = predict_source(_cfg(checkpoint, synth_root / "val", tmp_path / "out", "threads=1", "draw=false"),
                            console=console)
    text = console.export_text()
    total = len(list((synth_root / "val").glob("*.jpg")))
    assert result["images"] == total
    assert f"{total}/{total}" in text and "images/s" in text and "predict val" in text


def test_images_per_second_after_a_single_batch():
    """One batch of 4 in 2 s reads 2.0 images/s (rich's own estimate would still say nothing)."""
    from rich.progress import Task

    from neo.inference.progress import ImagesPerSecondColumn

    now = [10.0]
    task = Task(0, "predict", total=4, completed=0, _get_time=lambda: now[0])
    column = ImagesPerSecondColumn()
    task.start_time = 10.0
    assert column.render(task).plain == "- images/s"
    now[0], task.completed = 12.0, 4
    assert column.render(task).plain == "2.0 images/s"
