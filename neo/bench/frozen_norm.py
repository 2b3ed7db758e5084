"""`neo-bench frozen-norm`: eval forward time of a PResNet preset with its frozen norms folded into the convs
(neo's default) vs unfolded (conv -> norm, the official order, exact), measured in the same run.

The two settings run alternately on one model (same weights, same input), so machine noise hits both; the
figure is the ratio of the medians. Examples:

    neo-bench frozen-norm                                   # rtdetr_r50, 320x576, batch 1, 5 steps each
    neo-bench frozen-norm --preset rtdetr_r101 --size 544x960 --steps 3

Sizes are H x W (e.g. 320x576) or a named size (720p). Presets without frozen norms (R18, R34, tiny) are
measured with freeze_norm on, so the folded path exists.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from neo.bench.model import parse_hw


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-bench frozen-norm", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="rtdetr_r50", help="a PResNet preset of conf/model/ (default rtdetr_r50)")
    parser.add_argument("--size", type=parse_hw, default=(320, 576), help="H x W, e.g. 320x576 or 720p")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards per setting")
    parser.add_argument("--steps", type=int, default=5, help="timed forwards per setting (alternating)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def time_folded_and_unfolded(net: torch.nn.Module, images: torch.Tensor, warmup: int, steps: int,
                             ) -> dict[bool, list[float]]:
    """Seconds per eval forward for fold True and False, alternating (``net.backbone.set_fold_frozen_norm``).

    images: uint8 [B, 3, H, W] on the model's device. Returns {True: [s, ...], False: [s, ...]}."""
    sync = torch.cuda.synchronize if images.device.type == "cuda" else (lambda: None)
    times: dict[bool, list[float]] = {True: [], False: []}
    with torch.no_grad():
        for step in range(warmup + steps):
            for fold in (True, False) if step % 2 == 0 else (False, True):
                net.backbone.set_fold_frozen_norm(fold)
                sync()
                start = time.perf_counter()
                net(images)
                sync()
                if step >= warmup:
                    times[fold].append(time.perf_counter() - start)
    net.backbone.set_fold_frozen_norm(True)
    return times


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from neo.models.rtdetr import PRESETS, build_preset, load_preset_config

    if args.threads:
        torch.set_num_threads(args.threads)
    presnet = [name for name in PRESETS
               if load_preset_config(name).net.backbone.get("_target_") == "neo.models.rtdetr.PResNet"]
    if args.preset not in presnet:
        print(f"neo-bench frozen-norm: preset {args.preset} has no PResNet backbone (nothing to fold); use one of "
              f"{', '.join(presnet)}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    net = build_preset(args.preset, 80, {"net.backbone.freeze_norm": True})[0].eval().to(args.device)
    h, w = args.size
    images = torch.randint(0, 256, (args.batch, 3, h, w), dtype=torch.uint8).to(args.device)
    with torch.no_grad():
        net.backbone.set_fold_frozen_norm(False)
        exact = net(images)["pred_logits"]
        net.backbone.set_fold_frozen_norm(True)
        difference = (net(images)["pred_logits"] - exact).abs().max().item()
    times = time_folded_and_unfolded(net, images, args.warmup, args.steps)
    folded, unfolded = statistics.median(times[True]), statistics.median(times[False])
    print(f"preset {args.preset}  size {h}x{w} (HxW)  batch {args.batch}  device {args.device}  "
          f"threads {torch.get_num_threads()}  steps {args.steps} each, alternating")
    print(f"folded        {folded:.4f} s/forward  (model.net.backbone.fold_frozen_norm=true, the default)")
    print(f"unfolded      {unfolded:.4f} s/forward  (fold_frozen_norm=false: conv -> norm, exact official order)")
    print(f"cost          unfolded / folded = {unfolded / folded:.3f}x")
    print(f"difference    max |logit folded - logit unfolded| = {difference:.2e} (float rounding)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
