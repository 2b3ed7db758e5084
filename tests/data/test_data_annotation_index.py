"""The annotation index cache: used on the second start, rebuilt when the JSON changes, built once by
processes starting together, never seen half written, and equal to a fresh parse of the JSON."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

import neo.data.annotation_index as annotation_index
from neo.data.annotation_index import build_annotation_index, index_paths, load_annotation_index
from neo.data.array_file import ArrayFileError, read_array_file, write_array_file
from neo.data.coco import CocoDetection, DatasetError


def _forbid_json_parsing(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the annotation JSON was parsed although a matching index exists")

    monkeypatch.setattr(annotation_index.json, "load", refuse)


def _same_index(a, b) -> None:
    for name in ("ids", "files", "sizes", "offsets", "boxes", "labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.label_to_category_id == b.label_to_category_id and a.class_names == b.class_names
    assert a.num_degenerate_dropped == b.num_degenerate_dropped


def _targets(ds: CocoDetection) -> list[tuple[list, list]]:
    return [tuple(x.tolist() for x in ds.annotations(i)) for i in range(len(ds))]


def test_second_construction_maps_the_index_without_parsing_the_json(small_coco, monkeypatch):
    image_dir, ann = small_coco
    first = CocoDetection(image_dir, ann, size=(360, 640))
    assert first.index_file == ann.parent / f".{ann.name}.min1.neo-index" and first.index_file.is_file()
    _forbid_json_parsing(monkeypatch)
    second = CocoDetection(image_dir, ann, size=(360, 640))
    assert isinstance(second._boxes, np.memmap) and not second._boxes.flags.writeable  # shared pages, read-only
    assert _targets(second) == _targets(first) and second.ids.tolist() == first.ids.tolist() == [10, 11, 12, 13]
    assert second.label_to_category_id == [3, 7, 12] and second.num_degenerate_dropped == 2
    image, target = second[3]
    assert target["labels"].tolist() == [1] and image.shape == (3, 360, 640)
    cached = load_annotation_index(ann)
    monkeypatch.undo()
    _same_index(cached, build_annotation_index(ann))  # the mapped index equals a fresh parse


def test_a_changed_json_is_never_served_from_the_old_index(small_coco, monkeypatch):
    image_dir, ann = small_coco
    assert _targets(CocoDetection(image_dir, ann))[0][0][0] == [32.0, 18.0, 96.0, 54.0]
    before = ann.stat()
    # Same size, new contents, and the old mtime put back (as `cp -p` or an unpacker would do).
    edited = ann.read_text().replace('"bbox": [32, 18, 64, 36]', '"bbox": [33, 18, 64, 36]')
    assert len(edited) == before.st_size
    ann.write_text(edited)
    os.utime(ann, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert _targets(CocoDetection(image_dir, ann))[0][0][0] == [33.0, 18.0, 97.0, 54.0]
    # Same size, same contents, new mtime: rebuilt too (the JSON is parsed again).
    parsed = []
    real_load = json.load
    monkeypatch.setattr(annotation_index.json, "load", lambda f: parsed.append(1) or real_load(f))
    os.utime(ann, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert _targets(CocoDetection(image_dir, ann))[0][0][0] == [33.0, 18.0, 97.0, 54.0] and parsed == [1]
    CocoDetection(image_dir, ann)
    assert parsed == [1]  # and then served from the new index
    # A different min_box_size is its own index; the first one stays valid.
    assert CocoDetection(image_dir, ann, min_box_size=30).num_boxes == 3 and parsed == [1, 1]
    assert CocoDetection(image_dir, ann).num_boxes == 4 and parsed == [1, 1]


def test_an_invalid_json_is_never_cached_and_its_fix_is_picked_up(small_coco):
    image_dir, ann = small_coco
    good = ann.read_text()
    ann.write_text(good.replace('"category_id": 12', '"category_id": 99'))
    for _ in range(2):  # the same mistake twice: the same clear error, no index written
        with pytest.raises(DatasetError, match="category_id 99.*not in 'categories'"):
            CocoDetection(image_dir, ann)
    assert not any(p.exists() for p in index_paths(ann, 1.0))
    for bad_box in ("[32, 18, 64]", '[32, 18, "wide", 36]', "[32, 18, 64, 36, 1, 2, 3, 4]", "null"):
        ann.write_text(good.replace("[32, 18, 64, 36]", bad_box))
        with pytest.raises(DatasetError, match=r"annotation id 1 on image 10 has bbox .*\[x, y, width, height\]"):
            CocoDetection(image_dir, ann)
    ann.write_text(good[: len(good) // 2])
    with pytest.raises(DatasetError, match="not valid JSON.*truncated"):
        CocoDetection(image_dir, ann)
    ann.write_text(good)
    assert CocoDetection(image_dir, ann).num_boxes == 4


def test_a_damaged_or_foreign_index_file_is_rebuilt(small_coco):
    image_dir, ann = small_coco
    expected = _targets(CocoDetection(image_dir, ann))
    index_file = index_paths(ann, 1.0)[0]
    whole = index_file.read_bytes()
    index_file.write_bytes(whole[: len(whole) - 100])  # truncated (e.g. a copy that stopped)
    with pytest.raises(ArrayFileError, match="truncated"):
        read_array_file(index_file)
    assert _targets(CocoDetection(image_dir, ann)) == expected
    assert index_file.read_bytes() == whole
    index_file.write_bytes(b"something else entirely")
    assert _targets(CocoDetection(image_dir, ann)) == expected and index_file.read_bytes() == whole


def _start_together(barrier, ann: str, parse_count, results) -> None:
    real_load = json.load

    def counting_load(f):
        with parse_count.get_lock():
            parse_count.value += 1
        return real_load(f)

    annotation_index.json.load = counting_load
    barrier.wait()
    index = load_annotation_index(ann)
    results.put((index.path is not None, index.ids.tolist(), index.boxes.tolist(), index.labels.tolist()))


def test_processes_starting_at_once_build_the_index_once(small_coco):
    _, ann = small_coco
    ctx = multiprocessing.get_context("fork")
    n = 4
    barrier, parse_count, results = ctx.Barrier(n), ctx.Value("i", 0), ctx.Queue()
    procs = [ctx.Process(target=_start_together, args=(barrier, str(ann), parse_count, results)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert parse_count.value == 1  # one process parsed, the others waited and mapped its file
    assert all(g == got[0] for g in got) and got[0][0]
    assert got[0][1] == [10, 11, 12, 13] and len(got[0][3]) == 4
    leftovers = [p.name for p in ann.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def _write_forever(path: str, started) -> None:
    big = np.zeros(64 << 20, dtype=np.uint8)  # 64 MiB: slow enough to be killed mid-write

    started.set()
    while True:
        write_array_file(path, {"a": big, "b": big}, {"note": "never finished"})


def test_a_writer_killed_mid_write_leaves_no_partial_index(small_coco):
    image_dir, ann = small_coco
    target = index_paths(ann, 1.0)[0]
    ctx = multiprocessing.get_context("fork")
    started = ctx.Event()
    writer = ctx.Process(target=_write_forever, args=(str(target), started))
    writer.start()
    assert started.wait(60)
    deadline = time.monotonic() + 60
    while not list(target.parent.glob(f".{target.name}.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    if target.exists():  # a file at the final name is always a whole one
        meta, arrays = read_array_file(target)
        assert meta == {"note": "never finished"} and arrays["a"].shape == (64 << 20,)
    orphans = list(target.parent.glob(f".{target.name}.*.tmp"))
    assert orphans, "the writer was killed before it started writing: nothing was tested"
    ds = CocoDetection(image_dir, ann)  # the next start rebuilds the index and clears the orphan
    assert ds.num_boxes == 4 and ds.index_file == target
    assert list(target.parent.glob(f".{target.name}.*.tmp")) == []


def test_an_interrupted_write_removes_its_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "x.neo-index"
    write_array_file(target, {"a": np.arange(3)}, {"m": 1})

    def interrupt(fd):
        raise KeyboardInterrupt  # Ctrl-C after the bytes were written, before the rename

    monkeypatch.setattr("neo.data.array_file.os.fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_array_file(target, {"a": np.arange(4)}, {"m": 2})
    meta, arrays = read_array_file(target)
    assert meta == {"m": 1} and arrays["a"].tolist() == [0, 1, 2]  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["x.neo-index"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_dataset_folder_uses_neo_cache_dir(small_coco, tmp_path, monkeypatch):
    image_dir, ann = small_coco
    monkeypatch.setenv("NEO_CACHE_DIR", str(tmp_path / "cache"))
    ann.parent.chmod(0o555)
    try:
        ds = CocoDetection(image_dir, ann)
        assert ds.index_file == index_paths(ann, 1.0)[1] and str(ds.index_file).startswith(str(tmp_path / "cache"))
        _forbid_json_parsing(monkeypatch)
        assert CocoDetection(image_dir, ann).num_boxes == 4
    finally:
        ann.parent.chmod(0o755)


def test_array_file_round_trip_keeps_dtypes_shapes_and_empty_arrays(tmp_path):
    arrays = {"i": np.arange(5, dtype=np.int64), "f": np.ones((3, 4), np.float32), "s": np.asarray(["a", "bcd"]),
              "empty": np.zeros((0, 4), np.float32)}
    write_array_file(tmp_path / "a", arrays, {"k": [1, 2]})
    meta, back = read_array_file(tmp_path / "a")
    assert meta == {"k": [1, 2]}
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
        np.testing.assert_array_equal(back[name], value)
