"""Defaults that fit the machine: the default trainer preset, precision=auto, and a real CPU Trainer."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
from hydra.utils import instantiate

from neo.config import trainer_settings
from neo.config.trainer_settings import uses_gpu
from neo.training.machine import make_trainer, resolve_precision
from neo.training.precision import AVX2_CPU, AVX512_BF16_CPU, detect_cpu
from tests.training.test_config_tree import _compose


@pytest.mark.parametrize("accelerator,cuda,bf16,cpu,expected", [
    ("auto", True, True, AVX2_CPU, "bf16-mixed"),          # Ampere or newer
    ("auto", True, False, AVX512_BF16_CPU, "16-mixed"),    # older GPUs: fp16 AMP, whatever the CPU
    ("auto", False, False, AVX2_CPU, "32-true"),           # no GPU, no native bf16: fp32
    ("auto", False, False, AVX512_BF16_CPU, "bf16-mixed"),  # no GPU, AVX512-BF16: bf16 autocast
    ("gpu", True, False, AVX2_CPU, "16-mixed"),
    ("cpu", True, True, AVX2_CPU, "32-true"),              # trainer=cpu on a GPU machine stays on the CPU
    ("cpu", True, True, AVX512_BF16_CPU, "bf16-mixed"),
])
def test_precision_auto_follows_the_device(accelerator, cuda, bf16, cpu, expected) -> None:
    assert resolve_precision("auto", accelerator, cuda, bf16, cpu=cpu) == expected


@pytest.mark.parametrize("given,expected", [(16, "16-mixed"), ("16", "16-mixed"), ("bf16", "bf16-mixed"),
                                            (32, "32-true"), ("64", "64-true"), ("bf16-true", "bf16-true")])
def test_explicit_precision_and_lightning_aliases_pass_through_canonical(given, expected) -> None:
    assert resolve_precision(given, "gpu", True, True) == expected


def test_default_trainer_lets_lightning_use_every_gpu_one_process_each() -> None:
    trainer = _compose().trainer
    assert trainer._target_ == "neo.training.machine.make_trainer"
    assert (trainer.accelerator, trainer.devices, trainer.strategy, trainer.precision) == ("auto", "auto", "auto", "auto")
    assert uses_gpu(trainer.accelerator, cuda_available=True) and not uses_gpu(trainer.accelerator, cuda_available=False)


def test_default_trainer_on_a_faked_gpu_machine_asks_lightning_for_the_gpu_in_bf16(monkeypatch) -> None:
    seen = {}

    class RecordingTrainer:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(trainer_settings, "cuda_status", lambda: (True, True))
    monkeypatch.setattr(pl, "Trainer", RecordingTrainer)
    make_trainer(accelerator="auto", devices="auto", strategy="auto", precision="auto", max_epochs=1)
    assert seen == {"accelerator": "auto", "devices": "auto", "strategy": "auto", "precision": "bf16-mixed",
                    "max_epochs": 1}


def test_default_trainer_on_this_cpu_machine_is_a_real_cpu_trainer_at_its_native_precision(tmp_path) -> None:
    cfg = _compose(f"paths.root_dir={tmp_path}")
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False, _convert_="all")
    assert isinstance(trainer, pl.Trainer)
    assert type(trainer.accelerator).__name__ == "CPUAccelerator" and trainer.num_devices == 1
    assert trainer.precision == ("bf16-mixed" if detect_cpu().native_bf16 else "32-true")


def test_the_demo_and_the_tests_stay_on_the_cpu() -> None:
    demo = _compose("experiment=cpu_demo").trainer
    assert (demo.accelerator, demo.devices, demo.precision) == ("cpu", 1, "auto")
    assert _compose("trainer=cpu").trainer.accelerator == "cpu"
