"""neo-bench scale: COCO-sized data. Dataset start (cold / warm), loader memory, validation cost.

Generates (or reuses with ``--dir``) a COCO-sized dataset: a train JSON of 118,287 images / ~860k boxes
with polygons (~400 MB) and a val JSON of 5,000 images, whose images are links to a few real JPEGs.
Then, each start in a fresh process:

- start: pycocotools' ``COCO(file)`` (what every process and rank paid before the annotation index, a
  lower bound of it), neo's cold start (no index yet: parse + write it) and warm start (index mapped),
  with wall time and peak RSS above the process's size after imports;
- loader: total PSS of the main process + ``--workers`` DataLoader workers over ``--batches`` shuffled
  batches of the train split (flat = the workers share the mapped index instead of copying it);
- validation: ``CocoEvaluator`` at val size x ``--per-image`` detections against calling
  faster-coco-eval directly (``loadRes`` + ``COCOeval_faster``) on the same detections, the stats
  compared for equality, and the process RSS after each round.

    neo-bench scale                      # COCO sizes (needs ~3 GB RAM and a few minutes)
    neo-bench scale --quick              # 10k train / 500 val images, fewer batches
    neo-bench scale --dir data/scale     # keep the generated files for the next run
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from rich.table import Table

from neo.bench.scale_data import link_images, model_like_predictions, write_coco_like
from neo.console import stdout_console

MB = 2**20


def _reset_peak() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux; elsewhere the peak stays)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _pss_mb(process: psutil.Process) -> float:
    """PSS of a process and all its children (the fair share of pages they have in common)."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_full_info().pss
    return total / MB


def _start_child(kind: str, image_dir: str, annotation_file: str, queue) -> None:
    """Child process: time one dataset start and report its memory."""
    from neo.data.coco import CocoDetection

    me = psutil.Process()
    base = me.memory_info().rss / MB
    _reset_peak()
    started = time.perf_counter()
    if kind == "pycocotools":
        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            kept: Any = COCO(annotation_file)
    else:
        kept = CocoDetection(image_dir, annotation_file, size="640x360")
    seconds = time.perf_counter() - started
    queue.put({"seconds": seconds, "base_mb": base, "peak_mb": _peak_mb() - base,
               "held_mb": me.memory_info().rss / MB - base, "items": len(getattr(kept, "ids", ())) or None})


def _loader_child(image_dir: str, annotation_file: str, batches: int, batch_size: int, workers: int, queue) -> None:
    """Child process: iterate shuffled train batches with workers, sampling the total PSS."""
    import cv2
    import torch
    from torch.utils.data import DataLoader

    from neo.data.coco import CocoDetection
    from neo.data.collate import collate_detection

    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # one decode thread per worker, as in training (and no pool torn down at exit)
    ds = CocoDetection(image_dir, annotation_file, size="640x360")
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=collate_detection,
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
    me, samples = psutil.Process(), []
    every = max(1, batches // 10)
    started = time.perf_counter()
    batches_iter = iter(loader)
    for i, _ in enumerate(batches_iter, start=1):
        if i == 1 or i % every == 0 or i == batches:
            samples.append((i, _pss_mb(me)))
        if i >= batches:
            break
    seconds = time.perf_counter() - started
    del batches_iter, loader  # stop the workers before this process exits
    gc.collect()
    queue.put({"samples": samples, "seconds": seconds})


def _in_child(target, *args) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _validation(annotation_file: Path, per_image: int, rounds: int, batch: int) -> list[dict[str, Any]]:
    """Rounds of neo (update + compute) vs faster-coco-eval directly on the same detections."""
    from faster_coco_eval import COCO, COCOeval_faster

    from neo.data.coco_categories import COCO_CATEGORIES
    from neo.evaluation.coco import METRIC_NAMES, CocoEvaluator

    image_ids, predictions = model_like_predictions(annotation_file, per_image)
    evaluator = CocoEvaluator(annotation_file, [c for c, _ in COCO_CATEGORIES])
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotation_file))
    gt.print_function = lambda *args, **kwargs: None
    me, rows = psutil.Process(), []

    def run_neo(row: dict[str, Any]) -> None:
        evaluator.reset()
        started = time.perf_counter()
        for b in range(0, len(image_ids), batch):
            evaluator.update(predictions[b : b + batch], image_ids[b : b + batch])
        row["update_s"] = time.perf_counter() - started
        started = time.perf_counter()
        row["metrics"] = evaluator.compute()
        row["compute_s"] = time.perf_counter() - started
        row["rss_after_mb"] = me.memory_info().rss / MB

    def run_direct(row: dict[str, Any]) -> None:
        evaluator.reset()
        evaluator.update(predictions, image_ids)
        detections = evaluator.detections()  # the same detections, as a user would hand them over
        evaluator.reset()
        started = time.perf_counter()
        direct = COCOeval_faster(gt, gt.loadRes(detections), "bbox", print_function=lambda *a, **k: None)
        direct.evaluate()
        direct.accumulate()
        direct.summarize()
        row["direct_s"] = time.perf_counter() - started
        row["direct_stats"] = [float(v) for v in direct.stats[: len(METRIC_NAMES)]]
        del detections, direct
        gc.collect()

    for r in range(rounds):
        row: dict[str, Any] = {"detections": per_image * len(image_ids)}
        order = (run_neo, run_direct) if r % 2 == 0 else (run_direct, run_neo)
        for step in order:
            step(row)
        row["identical"] = [row["metrics"][k] for k in METRIC_NAMES] == row["direct_stats"]
        rows.append(row)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-bench scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-images", type=int, help="default 118,287 (10,000 with --quick)")
    parser.add_argument("--val-images", type=int, help="default 5,000 (500 with --quick)")
    parser.add_argument("--per-image", type=int, default=300, help="detections per val image")
    parser.add_argument("--batches", type=int, help="train batches iterated for the loader PSS (default 500; 100 "
                                                     "with --quick)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="validation rounds (neo and direct alternate)")
    parser.add_argument("--quick", action="store_true", help="smaller defaults: 10k train / 500 val images, 100 "
                                                              "batches")
    parser.add_argument("--dir", help="generate into / reuse this folder (default: a temporary one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    defaults = (10_000, 500, 100) if args.quick else (118_287, 5_000, 500)
    args.train_images = args.train_images or defaults[0]
    args.val_images = args.val_images or defaults[1]
    args.batches = args.batches or defaults[2]
    console = stdout_console()
    wide = 140  # the tables are wider than a terminal's 80 columns; a pipe keeps them whole
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.dir or tmp)
        files = {}
        for split, n in (("train", args.train_images), ("val", args.val_images)):
            ann = root / "annotations" / f"instances_{split}_{n}.json"
            started = time.perf_counter()
            if not ann.is_file():
                write_coco_like(ann, n, seed=0 if split == "train" else 1)
            link_images(root / "images", max(args.train_images, args.val_images))
            files[split] = ann
            console.print(f"{split}: {ann} ({ann.stat().st_size / MB:.0f} MB, ready in "
                          f"{time.perf_counter() - started:.1f} s)")
        image_dir, train = str(root / "images"), files["train"]
        for stale in train.parent.glob(f".{train.name}.*.neo-index"):
            stale.unlink()  # a cold start is really cold

        start = Table(min_width=100,
                      title=f"dataset start, train split ({args.train_images:,} images), one fresh process each",
                      caption="peak / held: RSS above the process after imports. Goals: warm < 1 s and "
                              "< 100 MB; cold no slower than the pycocotools parse that every start paid before")
        for col in ("start", "seconds", "peak MB", "held MB", "goal"):
            start.add_column(col, justify="right")
        reference = _in_child(_start_child, "pycocotools", image_dir, str(train))
        cold = _in_child(_start_child, "neo", image_dir, str(train))
        warm = [_in_child(_start_child, "neo", image_dir, str(train)) for _ in range(3)]
        warm_s = statistics.median(w["seconds"] for w in warm)
        warm_peak = max(w["peak_mb"] for w in warm)
        for name, r, goal in (
            ("pycocotools COCO(file) (before)", reference, ""),
            ("neo cold (parse + write index)", cold, "met" if cold["seconds"] <= reference["seconds"] else "missed"),
            ("neo warm (median of 3, max peak)", {**warm[0], "seconds": warm_s, "peak_mb": warm_peak},
             "met" if warm_s < 1 and warm_peak < 100 else "missed"),
        ):
            start.add_row(name, f"{r['seconds']:.2f}", f"{r['peak_mb']:.0f}", f"{r['held_mb']:.0f}", goal)
        console.print(start, width=wide)

        loader = _in_child(_loader_child, image_dir, str(train), args.batches, args.batch_size, args.workers)
        table = Table(min_width=100,
                      title=f"loader: main + {args.workers} workers, shuffled train batches of {args.batch_size} "
                            f"at 640x360 ({loader['seconds']:.0f} s)",
                      caption="total PSS of the processes; flat = workers share the mapped annotation index")
        table.add_column("batches", justify="right")
        table.add_column("PSS MB", justify="right")
        for i, pss in loader["samples"]:
            table.add_row(str(i), f"{pss:.0f}")
        console.print(table, width=wide)

        rows = _validation(files["val"], args.per_image, args.rounds, batch=32)
        table = Table(min_width=100, title=f"validation: {args.val_images:,} images x {args.per_image} detections "
                            f"({rows[0]['detections']:,})",
                      caption="neo compute = gather + COCOeval + memory return; update = the epoch's per-batch "
                              "conversions. direct = loadRes + COCOeval_faster on the same detections list. "
                              "Goal: compute <= 1.05x direct, identical stats")
        for col in ("round", "neo update s", "neo compute s", "direct s", "compute / direct", "identical stats",
                    "RSS after MB"):
            table.add_column(col, justify="right")
        for r, row in enumerate(rows, start=1):
            table.add_row(str(r), f"{row['update_s']:.2f}", f"{row['compute_s']:.2f}", f"{row['direct_s']:.2f}",
                          f"{row['compute_s'] / row['direct_s']:.2f}x", "yes" if row["identical"] else "NO",
                          f"{row['rss_after_mb']:.0f}")
        console.print(table, width=wide)
        if args.dir:
            console.print(f"files kept in {root}")
    return 0 if all(row["identical"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
