"""Defaults that fit the machine: the default trainer preset, precision=auto, and a real CPU Trainer."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
from hydra.utils import instantiate

from neo.training import machine
from neo.training.machine import make_trainer, resolve_precision, uses_gpu
from tests.training.test_config_tree import _compose


@pytest.mark.parametrize("accelerator,cuda,bf16,expected", [
    ("auto", True, True, "bf16-mixed"),    # Ampere or newer
    ("auto", True, False, "16-mixed"),     # older GPUs: fp16 AMP
    ("auto", False, False, "32-true"),     # no GPU: the CPU settings
    ("gpu", True, False, "16-mixed"),
    ("cpu", True, True, "32-true"),        # trainer=cpu on a GPU machine stays on the CPU
])
def test_precision_auto_follows_the_device(accelerator, cuda, bf16, expected) -> None:
    assert resolve_precision("auto", accelerator, cuda, bf16) == expected


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

    monkeypatch.setattr(machine, "cuda_status", lambda: (True, True))
    monkeypatch.setattr(pl, "Trainer", RecordingTrainer)
    make_trainer(accelerator="auto", devices="auto", strategy="auto", precision="auto", max_epochs=1)
    assert seen == {"accelerator": "auto", "devices": "auto", "strategy": "auto", "precision": "bf16-mixed",
                    "max_epochs": 1}


def test_default_trainer_on_this_cpu_machine_is_a_real_cpu_trainer_in_fp32(tmp_path) -> None:
    cfg = _compose(f"paths.root_dir={tmp_path}")
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False, _convert_="all")
    assert isinstance(trainer, pl.Trainer)
    assert type(trainer.accelerator).__name__ == "CPUAccelerator" and trainer.num_devices == 1
    assert trainer.precision == "32-true"


def test_the_demo_and_the_tests_stay_on_the_cpu() -> None:
    demo = _compose("experiment=cpu_demo").trainer
    assert (demo.accelerator, demo.devices, demo.precision) == ("cpu", 1, "bf16-mixed")
    assert _compose("trainer=cpu").trainer.accelerator == "cpu"
