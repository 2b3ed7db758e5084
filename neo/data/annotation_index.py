"""The flat annotation index of a COCO JSON file, built once and memory-mapped by every process.

Parsing COCO train (118k images, 860k boxes, 421 MB of JSON) takes ~25 s and ~2.5 GB in every process
and DDP rank that builds a dataset. The index is what the dataset keeps of it (sorted image ids, file
names, sizes, per-image box offsets, clipped xyxy boxes, contiguous labels, category maps), so it is
written once to an array file (:mod:`neo.data.array_file`) and every later process maps it read-only:
pages are shared between ranks and DataLoader workers, and a warm start reads no JSON at all.

Where: beside the JSON as ``.<name>.min<min_box_size>.neo-index`` when that folder is writable, else
under ``$NEO_CACHE_DIR/annotation-index/`` (default ``~/.cache/neo``), else nowhere (built in memory
each time, with a warning). Staleness: the file records the JSON's identity (size, mtime_ns, ctime_ns,
inode and a hash of its first and last MiB); any difference rebuilds it, so an edited JSON is never
served from an old index. Concurrency: one process builds under a file lock while the others wait and
then map its result; the file appears by an atomic rename, so it is never seen half written.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from neo.config_problems import UserError
from neo.data.array_file import ArrayFileError, read_array_file, write_array_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_SAMPLE_BYTES = 1 << 20  # head and tail of the JSON hashed into its identity


class AnnotationFileError(UserError, ValueError):
    """The annotation JSON cannot be used (malformed, wrong shape, inconsistent records)."""


VERIFY_HINT = "`neo-data verify <dataset dir>` checks a dataset"


@dataclass(frozen=True)
class AnnotationIndex:
    """What a detection dataset keeps of a COCO JSON file, as flat arrays (I images, N boxes).

    ids int64 [I] sorted image ids; files str [I] file names; sizes int64 [I, 2] (height, width);
    offsets int64 [I + 1]: image i owns boxes[offsets[i]:offsets[i + 1]]; boxes float32 [N, 4] xyxy px
    clipped to the image (crowd, non-finite and smaller than ``min_box_size`` left out); labels int64 [N]
    contiguous 0..C-1 in sorted category-id order. ``path``: the index file it is mapped from (None when
    built in memory).
    """

    ids: np.ndarray
    files: np.ndarray
    sizes: np.ndarray
    offsets: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    label_to_category_id: list[int]
    class_names: list[str]
    num_degenerate_dropped: int
    path: Path | None = None

    ARRAYS = ("ids", "files", "sizes", "offsets", "boxes", "labels")


def neo_cache_dir() -> Path:
    """neo's local cache folder: ``$NEO_CACHE_DIR`` (variables and ~ expanded) or ``~/.cache/neo``."""
    return Path(os.path.expandvars(os.environ.get("NEO_CACHE_DIR", "~/.cache/neo"))).expanduser()


def json_identity(annotation_file: Path) -> dict[str, Any]:
    """What identifies the JSON's contents without reading all of it: size, mtime_ns, ctime_ns, inode
    and a BLAKE2 hash of its first and last MiB (ctime changes on every write, even if mtime is restored)."""
    st = annotation_file.stat()
    digest = hashlib.blake2b(digest_size=16)
    with open(annotation_file, "rb") as f:
        digest.update(f.read(_SAMPLE_BYTES))
        if st.st_size > _SAMPLE_BYTES:
            f.seek(max(_SAMPLE_BYTES, st.st_size - _SAMPLE_BYTES))
            digest.update(f.read())
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino,
            "sample_blake2b": digest.hexdigest()}


def index_paths(annotation_file: Path, min_box_size: float) -> list[Path]:
    """Where the index of ``annotation_file`` may live, in order of preference."""
    name = f"{annotation_file.name}.min{min_box_size:g}.neo-index"
    resolved = str(annotation_file.resolve())
    key = hashlib.blake2b(resolved.encode(), digest_size=8).hexdigest()
    return [annotation_file.parent / f".{name}", neo_cache_dir() / "annotation-index" / f"{key}-{name}"]


def _open_index(path: Path, identity: dict[str, Any], min_box_size: float) -> AnnotationIndex | None:
    """The index mapped from ``path`` if it exists and was built from this very JSON, else None."""
    try:
        meta, arrays = read_array_file(path)
    except (FileNotFoundError, ArrayFileError):
        return None
    except OSError as exc:
        log.warning("cannot read the annotation index %s (%s); rebuilding it", path, exc)
        return None
    wanted = {"format": FORMAT_VERSION, "json": identity, "min_box_size": min_box_size}
    if {k: meta.get(k) for k in wanted} != wanted or set(arrays) != set(AnnotationIndex.ARRAYS):
        return None
    return AnnotationIndex(**arrays, label_to_category_id=list(meta["label_to_category_id"]),
                           class_names=list(meta["class_names"]),
                           num_degenerate_dropped=int(meta["num_degenerate_dropped"]), path=path)


def _writable_target(paths: list[Path]) -> Path | None:
    """The first candidate whose folder exists (or can be made) and is writable."""
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path.parent, os.W_OK):
            return path
    return None


def load_annotation_index(annotation_file: str | os.PathLike, min_box_size: float = 1.0) -> AnnotationIndex:
    """The annotation index of ``annotation_file``: mapped from its index file when that matches the JSON,
    else built from the JSON (under a lock, so concurrent processes build it once) and written for next time.
    AnnotationFileError (naming the file and the fix) for a malformed or inconsistent JSON."""
    annotation_file = Path(annotation_file)
    min_box_size = float(min_box_size)
    identity = json_identity(annotation_file)
    paths = index_paths(annotation_file, min_box_size)
    for path in paths:
        index = _open_index(path, identity, min_box_size)
        if index is not None:
            return index
    target = _writable_target(paths)
    if target is None:
        log.warning("no writable place for the annotation index of %s (its folder and %s are read-only): "
                    "parsing the JSON in every process", annotation_file, paths[-1].parent)
        return build_annotation_index(annotation_file, min_box_size)
    with FileLock(f"{target}.lock"):
        index = _open_index(target, identity, min_box_size)  # built by another process while we waited
        if index is not None:
            return index
        _remove_orphans(target)
        built = build_annotation_index(annotation_file, min_box_size)
        meta = {"format": FORMAT_VERSION, "json": identity, "min_box_size": min_box_size,
                "label_to_category_id": built.label_to_category_id, "class_names": built.class_names,
                "num_degenerate_dropped": built.num_degenerate_dropped}
        try:
            write_array_file(target, {name: getattr(built, name) for name in AnnotationIndex.ARRAYS}, meta)
        except OSError as exc:
            log.warning("could not write the annotation index %s (%s); using it from memory", target, exc)
            return built
        log.info("wrote the annotation index of %s to %s", annotation_file.name, target)
    return _open_index(target, identity, min_box_size) or built


def _remove_orphans(target: Path) -> None:
    """Delete temporary files a killed builder left beside ``target`` (call holding its lock: no live writer)."""
    for orphan in target.parent.glob(f".{target.name}.*.tmp"):
        orphan.unlink(missing_ok=True)


def _read_json(annotation_file: Path) -> dict[str, Any]:
    try:
        with open(annotation_file, "rb") as f:
            doc = json.load(f)
    except json.JSONDecodeError as exc:
        raise AnnotationFileError.of(
            f"annotation file {annotation_file}", f"is not valid JSON ({exc.msg}: line {exc.lineno}, column "
            f"{exc.colno}): it may be truncated", f"re-export or re-download it; {VERIFY_HINT}") from None
    except UnicodeDecodeError as exc:
        raise AnnotationFileError.of(f"annotation file {annotation_file}", f"is not UTF-8 text ({exc.reason})",
                                     f"re-export it as JSON; {VERIFY_HINT}") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations",
                                                                                  "categories")):
        raise AnnotationFileError.of(
            f"annotation file {annotation_file}", "is not a COCO detection file: it needs an object with 'images', "
            "'annotations' and 'categories' lists", f"convert it to COCO format; {VERIFY_HINT}")
    return doc


def build_annotation_index(annotation_file: str | os.PathLike, min_box_size: float = 1.0) -> AnnotationIndex:
    """Parse the JSON and flatten it (see :class:`AnnotationIndex`); no cache involved."""
    annotation_file = Path(annotation_file)
    # The cyclic GC would walk the millions of parsed containers again and again while they are made
    # (COCO train: ~10% of the parse); none of them forms a cycle, so pause it until they are flattened.
    collecting = gc.isenabled()
    gc.disable()
    try:
        doc = _read_json(annotation_file)
        return _flatten(annotation_file, doc, float(min_box_size))
    except (KeyError, TypeError, AttributeError) as exc:  # a record of the wrong shape
        raise AnnotationFileError.of(
            f"annotation file {annotation_file}", f"is not a COCO detection file ({type(exc).__name__}: {exc}): its "
            "images need 'id', 'file_name', 'width', 'height', its annotations 'image_id', 'category_id', 'bbox' "
            "and its categories 'id', 'name'", f"convert it to COCO format; {VERIFY_HINT}") from None
    finally:
        if collecting:
            gc.enable()


def _flatten(annotation_file: Path, doc: dict[str, Any], min_box_size: float) -> AnnotationIndex:
    categories = sorted(doc["categories"], key=lambda c: c["id"])
    label_to_category_id = [int(c["id"]) for c in categories]
    category_to_label = {cid: label for label, cid in enumerate(label_to_category_id)}
    images = {img["id"]: img for img in doc["images"]}  # a repeated id: the last record wins, as in pycocotools
    ids = sorted(images)
    if not ids:
        raise AnnotationFileError(f"dataset is empty: {annotation_file} lists no images.")
    unsized = [i for i in ids if not all(isinstance(images[i].get(k), int) and images[i][k] > 0
                                         for k in ("width", "height"))]
    if unsized:
        raise AnnotationFileError(
            f"{annotation_file}: {len(unsized)} image record(s) lack a positive integer width/height "
            f"(e.g. id {unsized[0]}: {images[unsized[0]]}). Fix the JSON or run `neo-data verify`."
        )
    row_of = {image_id: row for row, image_id in enumerate(ids)}
    rows, labels, kept = [], [], []
    for ann in doc["annotations"]:
        row = row_of.get(ann["image_id"])
        if row is None or ann.get("iscrowd", 0):
            continue
        label = category_to_label.get(ann["category_id"])
        if label is None:
            raise AnnotationFileError(
                f"{annotation_file}: annotation id {ann.get('id')} on image {ann['image_id']} uses category_id "
                f"{ann['category_id']}, which is not in 'categories' ({label_to_category_id}). Fix the JSON or "
                f"run `neo-data verify`."
            )
        rows.append(row)
        labels.append(label)
        kept.append(ann)
    xywh = _boxes_of(annotation_file, kept)
    sizes = np.asarray([(images[i]["height"], images[i]["width"]) for i in ids], dtype=np.int64).reshape(-1, 2)
    rows_a = np.asarray(rows, dtype=np.int64)
    boxes, keep = _clip(xywh, sizes[rows_a], min_box_size)
    order = np.argsort(rows_a[keep], kind="stable")  # grouped by image, file order within an image
    kept_rows = rows_a[keep][order]
    counts = np.bincount(kept_rows, minlength=len(ids))
    return AnnotationIndex(
        ids=np.asarray(ids, dtype=np.int64),
        files=np.asarray([str(images[i]["file_name"]) for i in ids], dtype=np.str_),
        sizes=sizes,
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes=boxes[keep][order].astype(np.float32),
        labels=np.asarray(labels, dtype=np.int64)[keep][order],
        label_to_category_id=label_to_category_id,
        class_names=[str(c["name"]) for c in categories],
        num_degenerate_dropped=int((~keep).sum()),
    )


def _boxes_of(annotation_file: Path, annotations: list[dict[str, Any]]) -> np.ndarray:
    """The annotations' "bbox" as float64 [N, 4] xywh; AnnotationFileError naming the first malformed one."""
    try:
        boxes = np.asarray([ann["bbox"] for ann in annotations], dtype=np.float64)
        if annotations and boxes.shape != (len(annotations), 4):
            raise ValueError("not four numbers each")
        return boxes.reshape(-1, 4)
    except (KeyError, TypeError, ValueError):
        for ann in annotations:
            bbox = ann.get("bbox")
            try:
                if len(np.asarray(bbox, dtype=np.float64).reshape(-1)) == 4 and isinstance(bbox, list):
                    continue
            except (TypeError, ValueError):
                pass
            raise AnnotationFileError(
                f"{annotation_file}: annotation id {ann.get('id')} on image {ann['image_id']} has bbox {bbox!r}; "
                f"COCO boxes are [x, y, width, height] in pixels. Fix the JSON or run `neo-data verify`."
            ) from None
        raise


def _clip(xywh: np.ndarray, sizes: np.ndarray, min_box_size: float) -> tuple[np.ndarray, np.ndarray]:
    """COCO boxes float64 [N, 4] xywh and their images' (height, width) int64 [N, 2] -> (xyxy clipped to the
    image [N, 4], keep bool [N]: finite and at least ``min_box_size`` px wide and high after clipping)."""
    finite = np.isfinite(xywh).all(axis=1)
    xywh = np.where(finite[:, None], xywh, 0.0)
    limits = np.concatenate([sizes[:, ::-1], sizes[:, ::-1]], axis=1).astype(np.float64)  # (w, h, w, h)
    xyxy = np.clip(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1), 0.0, limits)
    keep = finite & (xyxy[:, 2] - xyxy[:, 0] >= min_box_size) & (xyxy[:, 3] - xyxy[:, 1] >= min_box_size)
    return xyxy, keep
