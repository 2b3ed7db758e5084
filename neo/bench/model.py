"""`neo-bench model`: params, GFLOPs, forward and forward+backward time, peak memory of a preset.

Random uint8 images and random boxes (no data loading); warm-up steps are not timed; times are
medians. Examples:

    neo-bench model                                            # rtdetr_r50, 544x960, batch 2, fp32
    neo-bench model --preset tiny --size 360x640 --batch 4
    neo-bench model --preset rtdetr_r50 --size 1080x1920 --batch 1 --precision bf16 --channels-last
    neo-bench model --tuned-malloc        # re-run under glibc malloc tunables (big mmap/trim thresholds)

Sizes are H x W here (e.g. 544x960); named sizes such as 1080p are accepted too.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

import torch

from neo.models.rtdetr.presets import PRESETS

MALLOC_TUNABLES = {
    "MALLOC_MMAP_THRESHOLD_": str(16 * 2**30),
    "MALLOC_TRIM_THRESHOLD_": str(16 * 2**30),
    "MALLOC_TOP_PAD_": str(2**30),
}


def parse_hw(value: str) -> tuple[int, int]:
    """ "544x960" (H x W) or a named size ("1080p") -> (h, w)."""
    if value.endswith("p") and value[:-1].isdigit():
        h = int(value[:-1])
        return h, round(h * 16 / 9 / 2) * 2
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size {value!r}: use HxW such as 544x960, or 1080p") from err
    return h, w


def random_batch(batch: int, h: int, w: int, num_classes: int, boxes: int = 8, seed: int = 0):
    """uint8 images [B, 3, H, W] and targets with `boxes` random boxes each (data contract)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, generator=g)
    targets = []
    for _ in range(batch):
        cxcy = torch.rand(boxes, 2, generator=g) * 0.6 + 0.2
        wh = torch.rand(boxes, 2, generator=g) * 0.3 + 0.05
        targets.append(
            {
                "labels": torch.randint(0, num_classes, (boxes,), generator=g),
                "boxes": torch.cat([cxcy, wh], 1),
                "orig_size": torch.tensor([h, w]),
                "letterbox": torch.tensor([1.0, 1.0, 0.0, 0.0]),
            }
        )
    return images, targets


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, warmup: int, steps: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-bench model", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--preset", default="rtdetr_r50", choices=PRESETS, metavar="PRESET",
        help=f"a preset of conf/model/: {', '.join(PRESETS)} (default rtdetr_r50)",
    )
    parser.add_argument("--size", type=parse_hw, default=(544, 960), help="H x W, e.g. 544x960 or 1080p")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="autocast precision (bf16 is fast on CPUs with AVX512-BF16)",
    )
    parser.add_argument("--channels-last", action="store_true", help="model and input in channels-last")
    parser.add_argument("--num-classes", type=int, default=80)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--mode", choices=["eval", "train", "both"], default="both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--tuned-malloc",
        action="store_true",
        help="re-run this command with glibc malloc tunables (measured ~25%% faster on CPU)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    if args.tuned_malloc and not all(k in os.environ for k in MALLOC_TUNABLES):
        env = {**os.environ, **MALLOC_TUNABLES}
        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--tuned-malloc"]
        if rest and rest[0] == "model":
            rest = rest[1:]
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "neo.bench.model", *rest, "--tuned-malloc"], env)

    from torch.utils.flop_counter import FlopCounterMode

    from neo.models.rtdetr import build_preset

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    h, w = args.size
    torch.manual_seed(0)
    net, criterion, _ = build_preset(args.preset, args.num_classes)
    net.to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    net.to(memory_format=memory_format)
    images, targets = random_batch(args.batch, h, w, args.num_classes)
    images = images.to(device).contiguous(memory_format=memory_format)
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(images[:1])
    gflops = counter.get_total_flops() / 1e9

    tuned = all(k in os.environ for k in MALLOC_TUNABLES)
    print(
        f"preset {args.preset}  size {h}x{w} (HxW)  batch {args.batch}  precision {args.precision}  "
        f"channels_last {args.channels_last}  device {device}  threads {torch.get_num_threads()}  "
        f"malloc tuned {tuned}"
    )
    print(f"params        trainable {trainable:,}  total {total:,}")
    print(f"GFLOPs        {gflops:.1f} per image (forward, eval mode, 2 x MAC)")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = peak_rss_mb()

    if args.mode in ("eval", "both"):

        def forward():
            with torch.no_grad(), autocast():
                net(images)

        times = _timed(forward, args.warmup, args.steps, device)
        med = statistics.median(times)
        print(
            f"forward       {med:.3f} s/step  {med / args.batch:.3f} s/image  (eval, median of {len(times)})"
        )

    if args.mode in ("train", "both"):
        net.train()
        parts = {"forward": [], "criterion": [], "backward": []}

        def train_step():
            net.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            with autocast():
                out = net(images, targets)
            t1 = time.perf_counter()
            loss = sum(criterion(out, targets).values())
            t2 = time.perf_counter()
            loss.backward()
            _sync(device)
            t3 = time.perf_counter()
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                parts[key].append(dt)

        times = _timed(train_step, args.warmup, args.steps, device)
        med = statistics.median(times)
        split = "  ".join(f"{k} {statistics.median(v[args.warmup :]):.2f}" for k, v in parts.items())
        print(
            f"fwd+bwd       {med:.3f} s/step  {med / args.batch:.3f} s/image  ({split}; "
            f"median of {len(times)})"
        )

    if device.type == "cuda":
        print(f"peak memory   {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB (CUDA allocated)")
    else:
        peak = peak_rss_mb()
        print(
            f"peak memory   {peak:.0f} MiB RSS high-water mark ({peak - rss0:+.0f} MiB during the timed steps)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
