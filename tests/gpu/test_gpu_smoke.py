"""GPU smoke path (``make test-gpu``): what a GPU run builds, run for real in a few minutes.

- the seed recipe ``experiment=rtdetr_r50_1080p`` (fp16 AMP + GradScaler + clipping + EMA + multi-scale) for
  a few dozen optimizer steps on synthetic 1080p data: it must train (issue 26: fused AdamW crashed it at
  the first clipped step) and report images/s;
- ``neo-bench train --preset rtdetr_r50 --size 1920x1080 --batch 4`` in bf16, fp16 and fp32 (images/s printed);
- the CPU demo on the default trainer (GPU, precision auto), then ``neo-export onnx`` of its checkpoint
  (onnxruntime parity checked by the command);
- DDP with one process;
- host synchronisations of one R50 1080p training step counted by ``torch.cuda.set_sync_debug_mode``.
Figures are printed (run with -s, as ``make test-gpu`` does); none is asserted (timings vary by machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import neo

from .commands import BENCH_1080P, SEED_RECIPE_STEPS, ddp_one_process, demo_on_the_gpu, seed_recipe
from .conftest import CUDA, REASON

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason=REASON)]
REPO = Path(__file__).resolve().parents[2]


def _run(module: str, args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    print(f"\n$ {module} {' '.join(args)}\n{proc.stdout[-6000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    return proc


def _summary(out: Path, run_name: str) -> dict:
    return json.loads((out / "outputs" / "runs" / run_name / "summary.json").read_text())


def test_seed_recipe_trains_at_1080p(synth_1080p: Path, tmp_path: Path) -> None:
    _run("neo.cli.train", seed_recipe(synth_1080p, tmp_path))
    summary = _summary(tmp_path, "rtdetr_r50_1080p")
    print(f"seed recipe: {summary['steps']} steps, {summary['images_per_s']:.1f} images/s, "
          f"precision {summary.get('precision')}, AP {summary['metrics'].get('AP')}")
    assert summary["status"] == "finished" and summary["steps"] == SEED_RECIPE_STEPS
    assert summary["images_per_s"] > 0


def test_bench_train_at_1080p_in_three_precisions() -> None:
    proc = _run("neo.cli.bench", BENCH_1080P, timeout=1200)
    for precision in ("bf16-mixed", "16-mixed", "32-true"):
        assert precision in proc.stdout, proc.stdout


def test_demo_on_the_default_trainer_then_onnx_export(synth_small: Path, tmp_path: Path) -> None:
    _run("neo.cli.train", demo_on_the_gpu(synth_small, tmp_path))
    summary = _summary(tmp_path, "cpu_demo")
    assert summary["status"] == "finished" and summary.get("precision") in ("bf16-mixed", "16-mixed"), summary
    checkpoint = Path(summary["last_checkpoint"] or summary["best_checkpoint"])
    _run("neo.cli.export", ["onnx", str(checkpoint), "--size", "640x360", "--out", str(tmp_path / "demo.onnx")])
    assert (tmp_path / "demo.onnx").stat().st_size > 0


def test_ddp_with_one_process(synth_small: Path, tmp_path: Path) -> None:
    _run("neo.cli.train", ddp_one_process(synth_small, tmp_path))
    summary = _summary(tmp_path, "ddp_one")
    assert summary["status"] == "finished" and summary["steps"] > 0


def test_host_synchronisations_of_an_r50_1080p_step() -> None:
    """forward + criterion + backward of R50 at 1920x1080, batch 4, bf16 autocast: neo's own code waits for the
    device once (the matcher's cost-matrix copy); every synchronisation is printed with where it came from."""
    from neo.models.rtdetr import build_preset

    torch.manual_seed(0)
    net, criterion, _ = build_preset("rtdetr_r50", num_classes=80)
    net = net.cuda().train()
    images = torch.randint(0, 255, (4, 3, 1080, 1920), dtype=torch.uint8, device="cuda")
    targets = [{"labels": torch.randint(0, 80, (n,), device="cuda"),
                "boxes": torch.cat([torch.rand(n, 2) * 0.6 + 0.2, torch.rand(n, 2) * 0.2 + 0.05], 1).cuda()}
               for n in (7, 0, 25, 3)]

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            outputs = net(images, targets)
        losses = criterion(outputs, targets)
        torch.stack(list(losses.values())).sum().backward()

    step()  # warm-up: cuDNN/cuBLAS set-up is not the steady state
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    sites = [f"{Path(w.filename).name}:{w.lineno}" for w in syncs]
    print(f"\nR50 1080p batch 4, one step: {len(syncs)} synchronisations: {sites}")
    neo_dir = str(Path(neo.__file__).parent)
    neo_sites = [site for w, site in zip(syncs, sites, strict=True) if w.filename.startswith(neo_dir)]
    assert len(neo_sites) <= 1 and all(site.startswith("matcher.py") for site in neo_sites), sites


def test_host_synchronisations_of_a_lightning_batch(tmp_path: Path) -> None:
    """A whole Lightning batch on the GPU as neo-train builds it (fp16 AMP + GradScaler, clip 0.1, EMA, the
    interrupt and speed callbacks): every synchronisation printed with its site; the model and
    RTDETRModule.training_step wait twice (the matcher's copy, the one read of the loss)."""
    import lightning.pytorch as pl
    from omegaconf import OmegaConf

    import conf
    from neo.models.rtdetr import load_preset_config
    from neo.training.callbacks import InterruptCheckpoint, TrainSpeedMonitor
    from neo.training.ema import EMA
    from neo.training.module import RTDETRModule

    class SyncsPerBatch(pl.Callback):
        def __init__(self) -> None:
            self.batches: list[list[warnings.WarningMessage]] = []
            self._catcher = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx >= 2:  # after warm-up
                self._catcher = warnings.catch_warnings(record=True)
                self.batches.append(self._catcher.__enter__())
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if self._catcher is not None:
                torch.cuda.set_sync_debug_mode("default")
                self._catcher.__exit__(None, None, None)
                self._catcher = None

    model = OmegaConf.to_container(load_preset_config("tiny", num_classes=3), resolve=True)
    optim = OmegaConf.to_container(OmegaConf.load(Path(conf.__file__).parent / "optim" / "default.yaml"), resolve=True)
    module = RTDETRModule(model=model, optim=optim)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 255, (4, 3, 360, 640), dtype=torch.uint8, generator=g),
                [{"labels": torch.randint(0, 3, (n,), generator=g),
                  "boxes": torch.cat([torch.rand(n, 2, generator=g) * 0.6 + 0.2,
                                      torch.rand(n, 2, generator=g) * 0.2 + 0.05], 1)} for n in (2, 0, 5, 1)])
               for _ in range(5)]
    loader = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b, pin_memory=True)
    counter = SyncsPerBatch()
    trainer = pl.Trainer(accelerator="gpu", devices=1, precision="16-mixed", gradient_clip_val=0.1, max_steps=5,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         callbacks=[EMA(), InterruptCheckpoint(tmp_path), TrainSpeedMonitor(), counter],
                         default_root_dir=tmp_path)
    trainer.fit(module, train_dataloaders=loader)
    neo_dir = str(Path(neo.__file__).parent)
    for i, caught in enumerate(counter.batches):
        syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
        sites = [f"{Path(w.filename).parent.name}/{Path(w.filename).name}:{w.lineno}" for w in syncs]
        print(f"\nbatch {i + 2}: {len(syncs)} synchronisations: {sites}")
        model_sites = [s for w, s in zip(syncs, sites, strict=True) if w.filename.startswith(neo_dir)
                       and ("/models/" in w.filename or w.filename.endswith("module.py"))]
        assert len(model_sites) <= 2, sites
