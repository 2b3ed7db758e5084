"""neo-bench data: training-pipeline images/s per worker (decode + augment + collate) vs a PIL + v2 baseline.

Generates 1920x1080 JPEGs (q90), then times, in one process with one thread (= one DataLoader worker):
neo (cv2 decode, albumentations on uint8, letterbox, collate) and the official-style baseline
(PIL decode, torchvision.transforms.v2 photometric/zoom-out/IoU crop/flip/resize/sanitize, collate).
With --dense, also neo with DEIM's dense one-to-one data (loss=deim: mosaic 0.5, mixup 0.5; neo.data.dense).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.table import Table

from neo.console import stdout_console
from neo.data.coco import CocoDetection
from neo.data.collate import collate_detection
from neo.data.dense import DenseAugment
from neo.data.sizes import check_16x9, format_size
from neo.data.synth import generate_synthetic_coco
from neo.data.transforms import DetectionTransform


def _timed(fn, n: int) -> tuple[float, float]:
    """Run fn(); return (images/s by wall clock, images/s by this process's CPU time)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def _neo_rate(ds: CocoDetection, size: tuple[int, int], n: int, batch: int, dense: bool = False) -> tuple[float, float]:
    keys = [(i % len(ds), size, True, i, *((True,) if dense else ())) for i in range(n)]
    for k in keys[:batch]:  # warm-up
        ds[k]

    def run() -> None:
        for b in range(0, n, batch):
            collate_detection([ds[k] for k in keys[b : b + batch]])

    return _timed(run, n)


def _baseline_rate(ds: CocoDetection, size: tuple[int, int], n: int, batch: int) -> tuple[float, float]:
    from PIL import Image
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    pipeline = v2.Compose([
        v2.RandomPhotometricDistort(p=0.5), v2.RandomZoomOut(fill=0, p=0.5),
        v2.RandomApply([v2.RandomIoUCrop()], p=0.8), v2.SanitizeBoundingBoxes(min_size=1),
        v2.RandomHorizontalFlip(), v2.Resize(size), v2.SanitizeBoundingBoxes(min_size=1),
    ])

    def load(i: int):
        img = Image.open(ds.image_path(i)).convert("RGB")
        boxes, labels = ds.annotations(i)
        bb = tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY", canvas_size=(img.height, img.width))
        image, target = pipeline(v2.functional.pil_to_tensor(img), {"boxes": bb, "labels": torch.from_numpy(labels)})
        return image, target

    torch.manual_seed(0)
    for i in range(batch):
        load(i % len(ds))

    def run() -> None:
        for b in range(0, n, batch):
            items = [load(i % len(ds)) for i in range(b, min(n, b + batch))]
            torch.stack([im for im, _ in items])

    return _timed(run, n)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-bench data", description=__doc__)
    parser.add_argument("--images", type=int, default=12, help="distinct 1920x1080 JPEGs generated")
    parser.add_argument("-n", "--samples", type=int, default=48, help="images timed per pipeline and size")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sizes", nargs="+", default=["1080p", "720p"], help="output canvas sizes")
    parser.add_argument("--dir", help="reuse/keep the generated JPEGs here (default: a temp folder)")
    parser.add_argument("--repeats", type=int, default=3, help="paired repeats per cell; the median is shown")
    parser.add_argument("--dense", action="store_true",
                        help="also time neo with DEIM's dense data (loss=deim: mosaic 0.5, mixup 0.5)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    sizes = [check_16x9(s, key="--sizes") for s in args.sizes]
    console = stdout_console()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.dir or tmp)
        if not (root / "annotations" / "instances_train.json").is_file():
            generate_synthetic_coco(root, num_train=args.images, num_val=1, size=(1080, 1920), jpeg_quality=90,
                                    max_objects=8, size_range=(0.08, 0.3), negative_fraction=0.0)
        ds = CocoDetection(root / "train", root / "annotations" / "instances_train.json", size=sizes[0],
                           transform=DetectionTransform(train=True))
        dense = CocoDetection(root / "train", root / "annotations" / "instances_train.json", size=sizes[0],
                              transform=DetectionTransform(train=True), dense=DenseAugment())
        kb = np.mean([ds.image_path(i).stat().st_size for i in range(len(ds))]) / 1024
        table = Table(title="neo-bench data: training pipeline images/s per worker (1 process, 1 thread)",
                      caption=f"{len(ds)} distinct 1920x1080 JPEGs q90 (~{kb:.0f} KB); decode + zoom-out + IoU crop + "
                              f"flip + resize + photometric + collate, batch {args.batch_size}; "
                              f"median of {args.repeats} paired runs x {args.samples} images. img/s is wall clock; the "
                              f"CPU-time rate is what one worker reaches on an otherwise idle core. Target: "
                              f">= 2x baseline and >= 25 img/s at 1920x1080 (wall clock)")
        for col in ("output (WxH)", "neo img/s", "PIL + v2 img/s", "ratio", "neo img/s (CPU time)",
                    "PIL + v2 (CPU time)", "target") + (("neo + dense img/s", "dense (CPU time)") if args.dense else ()):
            table.add_column(col, justify="right")
        for size in sizes:
            ours, base, dense_rates = [], [], []
            for _ in range(args.repeats):
                ours.append(_neo_rate(ds, size, args.samples, args.batch_size))
                base.append(_baseline_rate(ds, size, args.samples, args.batch_size))
                if args.dense:
                    dense_rates.append(_neo_rate(dense, size, args.samples, args.batch_size, dense=True))
            (o, oc), (b, bc) = np.median(ours, axis=0), np.median(base, axis=0)
            target = o >= 2 * b and (size != (1080, 1920) or o >= 25)
            extra = [f"{v:.1f}" for v in np.median(dense_rates, axis=0)] if args.dense else []
            table.add_row(format_size(size), f"{o:.1f}", f"{b:.1f}", f"{o / b:.2f}x", f"{oc:.1f}", f"{bc:.1f}",
                          "[green]met[/green]" if target else "[red]missed[/red]", *extra)
        console.print(table, width=120)  # wider than 80 columns: kept whole in a pipe
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
