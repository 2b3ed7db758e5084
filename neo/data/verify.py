"""Check a COCO-format dataset: missing/corrupt images, bad boxes, unknown categories, duplicate ids."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2


@dataclass
class VerifyReport:
    """Outcome of `verify_coco`: counts plus error and warning messages (errors make it fail)."""

    annotation_file: Path
    images: int = 0
    annotations: int = 0
    categories: int = 0
    negatives: int = 0
    crowd: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: Counter = field(default_factory=Counter)
    # category name -> (images holding it, instances), crowd boxes excluded; most instances first
    per_class: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, kind: str, message: str) -> None:
        self.problems[kind] += 1
        self.errors.append(message)

    def warn(self, kind: str, message: str) -> None:
        self.problems[kind] += 1
        self.warnings.append(message)


def verify_coco(annotation_file: str | Path, image_dir: str | Path, decode: bool = True) -> VerifyReport:
    """Verify one split. decode=False only checks files exist (fast on big sets).

    Errors: unreadable JSON, missing keys, duplicate image/annotation/category ids, unknown
    category or image ids, missing/corrupt images, boxes with non-positive size or outside the image.
    Warnings: images whose real size differs from the JSON, boxes partly outside the image.
    """
    annotation_file, image_dir = Path(annotation_file), Path(image_dir)
    report = VerifyReport(annotation_file)
    try:
        doc = json.loads(annotation_file.read_text())
    except FileNotFoundError:
        report.error("missing annotation file", f"annotation file not found: {annotation_file}")
        return report
    except json.JSONDecodeError as err:
        report.error("invalid JSON", f"{annotation_file} is not valid JSON: {err}")
        return report
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            report.error("missing key", f"{annotation_file} has no '{key}' list")
    if report.errors:
        return report
    images, anns, cats = doc["images"], doc["annotations"], doc["categories"]
    report.images, report.annotations, report.categories = len(images), len(anns), len(cats)
    if not images:
        report.error("empty dataset", f"{annotation_file} lists no images")
    for kind, items in (("image", images), ("annotation", anns), ("category", cats)):
        for value, n in Counter(item.get("id") for item in items).items():
            if n > 1:
                report.error(f"duplicate {kind} id", f"{kind} id {value} appears {n} times")
    cat_ids = {c.get("id") for c in cats}
    by_id = {img.get("id"): img for img in images}
    annotated = set()
    for ann in anns:
        aid, iid = ann.get("id"), ann.get("image_id")
        if ann.get("category_id") not in cat_ids:
            report.error("unknown category", f"annotation {aid}: category_id {ann.get('category_id')} not in categories {sorted(cat_ids)}")
        if iid not in by_id:
            report.error("unknown image", f"annotation {aid}: image_id {iid} not in images")
            continue
        annotated.add(iid)
        report.crowd += int(bool(ann.get("iscrowd", 0)))
        _check_box(report, ann, by_id[iid])
    report.negatives = sum(1 for i in by_id if i not in annotated)
    report.per_class = class_counts(cats, anns, set(by_id))
    for img in images:
        path = image_dir / str(img.get("file_name"))
        if not path.is_file():
            report.error("missing image", f"image {img.get('id')}: file missing: {path}")
            continue
        if decode:
            arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if arr is None:
                report.error("corrupt image", f"image {img.get('id')}: cannot decode {path}")
            elif (arr.shape[0], arr.shape[1]) != (img.get("height"), img.get("width")):
                report.warn("size mismatch", f"image {img.get('id')}: file is {arr.shape[1]}x{arr.shape[0]}, "
                                              f"JSON says {img.get('width')}x{img.get('height')}")
    return report


def class_counts(categories: list[dict], annotations: list[dict], image_ids: set) -> dict[str, tuple[int, int]]:
    """{category name: (images holding it, instances)} of non-crowd boxes on known images, every category
    listed (a class without boxes shows 0, 0), most instances first."""
    names = {c.get("id"): str(c.get("name", c.get("id"))) for c in categories}
    images: dict = {cid: set() for cid in names}
    instances: Counter = Counter()
    for ann in annotations:
        cid, iid = ann.get("category_id"), ann.get("image_id")
        if cid in names and iid in image_ids and not ann.get("iscrowd", 0):
            images[cid].add(iid)
            instances[cid] += 1
    order = sorted(names, key=lambda cid: (-instances[cid], names[cid]))
    return {names[cid]: (len(images[cid]), instances[cid]) for cid in order}


def _check_box(report: VerifyReport, ann: dict, img: dict) -> None:
    box = ann.get("bbox")
    if not isinstance(box, list) or len(box) != 4:
        report.error("bad box", f"annotation {ann.get('id')}: bbox {box!r} is not [x, y, w, h]")
        return
    x, y, w, h = box
    W, H = img.get("width", 0), img.get("height", 0)
    if w <= 0 or h <= 0:
        report.error("bad box", f"annotation {ann.get('id')}: bbox {box} has non-positive width/height")
    elif x >= W or y >= H or x + w <= 0 or y + h <= 0:
        report.error("bad box", f"annotation {ann.get('id')}: bbox {box} lies outside the {W}x{H} image")
    elif x < 0 or y < 0 or x + w > W + 1 or y + h > H + 1:
        report.warn("box partly outside", f"annotation {ann.get('id')}: bbox {box} extends past the {W}x{H} image (will be clipped)")


def find_splits(root: str | Path) -> list[tuple[Path, Path]]:
    """(annotation file, image folder) pairs under a dataset root: neo synth layout or COCO 2017."""
    root = Path(root)
    pairs = []
    for ann in sorted((root / "annotations").glob("instances_*.json")):
        split = ann.stem.removeprefix("instances_")
        if (root / split).is_dir() or split.startswith(("train", "val", "test")):
            pairs.append((ann, root / split))
    return pairs
