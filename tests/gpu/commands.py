"""The commands the GPU suite runs, as data: importable without a GPU, so the CPU suite checks that each one
composes and passes the configuration check (tests/training/test_optim_fused.py) before a GPU ever runs it."""

from __future__ import annotations

from pathlib import Path

SEED_RECIPE_STEPS = 30          # optimizer steps of the seed recipe (batch 4 x accumulate 2: 240 images)
SYNTH_1080P = {"num_train": 48, "num_val": 8, "size": "1920x1080", "num_classes": 3}
SMALL_SYNTH = {"num_train": 32, "num_val": 8, "size": "640x360", "num_classes": 3}


def synthetic_paths(root: Path | str) -> list[str]:
    """Overrides that point any data preset at a dataset made by ``neo.data.synth.generate_synthetic_coco``."""
    return [f"data.train_images={root}/train", f"data.train_annotations={root}/annotations/instances_train.json",
            f"data.val_images={root}/val", f"data.val_annotations={root}/annotations/instances_val.json",
            "data.num_classes=3"]


def seed_recipe(root: Path | str, out: Path | str) -> list[str]:
    """``experiment=rtdetr_r50_1080p`` as it is (fp16 AMP, clip 0.1, EMA, multi-scale 1600x900..2240x1260,
    batch 4 x accumulate 2), for a few dozen optimizer steps on synthetic 1080p data."""
    return ["experiment=rtdetr_r50_1080p", f"paths.root_dir={out}", *synthetic_paths(root),
            f"trainer.max_steps={SEED_RECIPE_STEPS}", "trainer.limit_val_batches=2", "trainer.num_sanity_val_steps=0",
            "print_config=false", "callbacks.progress=null"]


def demo_on_the_gpu(root: Path | str, out: Path | str, *extra: str, trainer: str = "default") -> list[str]:
    """The CPU demo with the default trainer (every GPU, precision auto = bf16-mixed or 16-mixed, clip 0.1)."""
    return ["experiment=cpu_demo", f"trainer={trainer}", "trainer.precision=auto", "channels_last=false",
            "torch_threads=null", f"paths.root_dir={out}", *synthetic_paths(root), "data.synthetic=null",
            "data.resolution=640x360", "trainer.max_epochs=1", "trainer.max_time=null",
            "trainer.limit_train_batches=8", "trainer.limit_val_batches=1", "trainer.check_val_every_n_epoch=1",
            "trainer.num_sanity_val_steps=0", "print_config=false", "callbacks.progress=null", *extra]


def ddp_one_process(root: Path | str, out: Path | str) -> list[str]:
    """DDP on one GPU, one process (the strategy, the samplers and the gathered validation all in play)."""
    return demo_on_the_gpu(root, out, "trainer.devices=1", "run_name=ddp_one", trainer="ddp")


BENCH_1080P = ["train", "--preset", "rtdetr_r50", "--size", "1920x1080", "--batch", "4",
               "--precision", "bf16-mixed", "16-mixed", "32-true", "--steps", "12", "--warmup", "4"]
