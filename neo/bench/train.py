"""`neo-bench train`: steady-state training images/s and peak memory through the real RTDETRModule.

Runs Lightning's Trainer on in-memory random uint8 batches with random boxes (no data loading, so
the figure is the model + criterion + optimizer + AMP/accumulation cost), skips warm-up steps, and
prints one row per variant:

    neo-bench train --preset tiny --size 360p --batch 8
    neo-bench train --preset tiny --size 360p --precision 32-true bf16-mixed --channels-last both
    neo-bench train --preset rtdetr_r50 --size 1080p --batch 4 --accumulate 2 --precision 16-mixed
    neo-bench train --preset rtdetr_r50 --size 1080p --batch 4 --compile both

``--compile on`` wraps the backbone and the hybrid encoder in ``torch.compile`` (their shapes are fixed by
the canvas; the decoder's query selection and the criterion are not); the first steps pay for the
compilation, so give ``--warmup`` enough steps and read the compile time from its own column.

``--precision`` and ``--channels-last`` default to ``auto``: what ``neo-train`` picks on this machine
(:mod:`neo.training.precision`: on a CPU bf16-mixed only with native bf16, else 32-true). A bf16 row on a
CPU without native bf16 says so: it is several times slower there.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from itertools import product

import torch
from torch.utils.data import DataLoader, Dataset

from neo.models.rtdetr.presets import PRESETS


class RandomDetection(Dataset):
    """``length`` random (uint8 [3, H, W], target) samples in the data contract, fixed by a seed."""

    def __init__(self, size: tuple[int, int], num_classes: int, length: int, boxes_per_image: int = 6) -> None:
        self.size, self.num_classes, self.length, self.boxes = size, num_classes, length, boxes_per_image

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        g = torch.Generator().manual_seed(index)
        h, w = self.size
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
        centre = torch.rand(self.boxes, 2, generator=g) * 0.6 + 0.2
        wh = torch.rand(self.boxes, 2, generator=g) * 0.3 + 0.05
        return image, {
            "labels": torch.randint(0, self.num_classes, (self.boxes,), generator=g),
            "boxes": torch.cat([centre, wh], 1),
            "image_id": torch.tensor(index),
            "orig_size": torch.tensor([h, w]),
            "letterbox": torch.tensor([1.0, 1.0, 0.0, 0.0]),
        }


class _Timer:
    """Lightning callback: wall time of optimizer steps after ``warmup`` steps."""

    def __init__(self, warmup: int) -> None:
        from lightning.pytorch.callbacks import Callback

        timer = self

        class _Cb(Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if trainer.global_step == timer.warmup and timer.start is None:
                    timer.start, timer.cpu_start, timer.batches = time.perf_counter(), time.process_time(), 0

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if timer.start is not None:
                    timer.batches += 1
                    timer.images += int(batch[0].shape[0])
                    timer.stop, timer.cpu_stop = time.perf_counter(), time.process_time()

        self.warmup, self.start, self.stop, self.batches, self.images = warmup, None, None, 0, 0
        self.cpu_start, self.cpu_stop = 0.0, 0.0
        self.callback = _Cb()


def _collate(batch):
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def build_module(preset: str, num_classes: int, channels_last: bool, compile_net: bool = False):
    """The real RTDETRModule of ``preset`` (no warm-up in its schedule); with ``compile_net`` its backbone and
    encoder are compiled in place (``nn.Module.compile``: parameter names and checkpoints unchanged)."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from neo.training.module import RTDETRModule

    with initialize_config_module(version_base="1.3", config_module="conf"):
        cfg = compose(config_name="train", overrides=[f"model={preset}", f"data.num_classes={num_classes}"])
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    optim_cfg = OmegaConf.to_container(cfg.optim, resolve=True)
    optim_cfg["schedule"]["warmup"] = 0
    module = RTDETRModule(model=model_cfg, optim=optim_cfg, channels_last=channels_last, val_samples=0)
    if compile_net:
        module.net.backbone.compile(dynamic=False)
        module.net.encoder.compile(dynamic=False)
    return module


def run_variant(preset: str, size: tuple[int, int], batch: int, accumulate: int, precision: str,
                channels_last: bool, steps: int, warmup: int, accelerator: str, num_classes: int,
                compile_net: bool = False) -> dict:
    """Train ``warmup + steps`` optimizer steps; returns images/s over the last ``steps``, the seconds of the
    warm-up steps (where a compilation is paid) and peak memory."""
    import lightning.pytorch as pl

    module = build_module(preset, num_classes, channels_last, compile_net)
    total = warmup + steps
    data = RandomDetection(size, num_classes, length=total * accumulate * batch)
    loader = DataLoader(data, batch_size=batch, collate_fn=_collate, num_workers=0)
    timer = _Timer(warmup)
    trainer = pl.Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=total, accumulate_grad_batches=accumulate,
        gradient_clip_val=0.1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[timer.callback], limit_val_batches=0, num_sanity_val_steps=0,
    )
    if torch.cuda.is_available() and accelerator != "cpu":
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    seconds = (timer.stop or 0) - (timer.start or 0)
    if torch.cuda.is_available() and accelerator != "cpu":
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (CUDA)"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process RSS)"
    cpu_seconds = timer.cpu_stop - timer.cpu_start
    return {"images_per_s": timer.images / seconds if seconds > 0 else 0.0,
            "cpu_images_per_s": timer.images / cpu_seconds if cpu_seconds > 0 else 0.0,
            "step_s": seconds / max(1, timer.batches / accumulate),
            "warmup_s": (timer.start or began) - began, "peak_memory": peak}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-bench train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=PRESETS, metavar="PRESET",
                        help=f"a preset of conf/model/: {', '.join(PRESETS)} (default tiny)")
    parser.add_argument("--size", default="360p", help="16:9 canvas: 360p, 1280x720, ... (W x H)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--accumulate", type=int, default=1)
    parser.add_argument("--precision", nargs="+", default=["auto"],
                        help="one or more of auto, 32-true, bf16-mixed, 16-mixed (default auto: what neo-train picks "
                             "here: bf16-mixed on GPUs with bf16 else 16-mixed; on a CPU bf16-mixed only with native "
                             "bf16 (AVX512-BF16/AMX), else 32-true)")
    parser.add_argument("--channels-last", choices=("auto", "on", "off", "both"), default="auto",
                        help="auto: what neo-train picks here (on for x86 CPUs and GPUs with mixed precision)")
    parser.add_argument("--compile", choices=("off", "on", "both"), default="off",
                        help="torch.compile the backbone and encoder (on), or measure both ways (both)")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed optimizer steps first")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--num-classes", type=int, default=80)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    from neo.data.sizes import check_16x9, format_size
    from neo.training.machine import machine_settings

    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = check_16x9(args.size, key="--size")
    gpu = torch.cuda.is_available() and args.accelerator in ("auto", "gpu", "cuda")
    accelerator = "gpu" if gpu else "cpu"
    layouts = {"on": [True], "off": [False], "both": [False, True], "auto": ["auto"]}[args.channels_last]
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    variants = [(machine_settings(p, layout, accelerator), compiled)
                for p, layout, compiled in product(args.precision, layouts, compiles)]
    cpu = variants[0][0].cpu
    print(f"preset={args.preset} size={format_size(size)} batch={args.batch} accumulate={args.accumulate} "
          f"device={'cuda' if gpu else 'cpu'} threads={torch.get_num_threads()} cpu={cpu.describe()}")
    print(f"{'precision':<17} {'channels_last':<14} {'compile':<8} {'images/s':>9} {'s/step':>8} {'warm-up s':>9}"
          f"  peak memory")
    rows = []
    for v, compiled in variants:
        precision, channels_last = v.precision.precision, v.channels_last
        r = run_variant(args.preset, size, args.batch, args.accumulate, precision, channels_last, args.steps,
                        args.warmup, accelerator, args.num_classes, compile_net=compiled)
        label = f"{precision} (auto)" if v.precision.requested == "auto" else precision
        note = "  (no native bf16 on this CPU: slow)" if v.precision.warning else ""
        print(f"{label:<17} {str(channels_last):<14} {'on' if compiled else 'off':<8} {r['images_per_s']:>9.2f} "
              f"{r['step_s']:>8.3f} {r['warmup_s']:>9.1f}  {r['peak_memory']}{note}", flush=True)
        rows.append({"precision": precision, "requested": v.precision.requested, "channels_last": channels_last,
                     "compile": compiled, **r})
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps({"cpu": cpu.as_dict(), "threads": torch.get_num_threads(),
                                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
