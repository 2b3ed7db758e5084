"""precision=auto and channels_last=auto follow what the CPU (or GPU) accelerates; the CPU kind is an input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neo.config.check import ConfigError, check_config
from neo.training.machine import machine_settings
from neo.training.precision import (
    AVX2_CPU,
    AVX512_BF16_CPU,
    CpuCapability,
    choose_channels_last,
    choose_precision,
    detect_cpu,
    onednn_isa_allows_bf16,
)
from neo.training.speed_check import WARMUP_BATCHES
from tests.conftest import train_overrides
from tests.training.helpers import compose_train

SKYLAKE = CpuCapability("AVX512", onednn_bf16=True, bf16_instructions=False)  # oneDNN says yes, no bf16 dot products
PLAIN = CpuCapability("DEFAULT", onednn_bf16=False, bf16_instructions=False)  # no vector ISA torch knows
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


@pytest.mark.parametrize("cpu,expected", [(AVX2_CPU, "32-true"), (AVX512_BF16_CPU, "bf16-mixed"),
                                          (SKYLAKE, "32-true"), (PLAIN, "32-true")])
def test_auto_on_a_cpu_is_bf16_only_where_bf16_is_native(cpu, expected) -> None:
    choice = choose_precision("auto", on_gpu=False, cuda_bf16=False, cpu=cpu)
    assert (choice.precision, choice.requested, choice.warning) == (expected, "auto", None)
    assert choice.describe() == f"{expected} (auto: {cpu.describe()})"
    assert ("no native bf16" in choice.reason) == (expected == "32-true")


@pytest.mark.parametrize("cuda_bf16,expected", [(True, "bf16-mixed"), (False, "16-mixed")])
def test_auto_on_a_gpu_ignores_the_cpu(cuda_bf16, expected) -> None:
    for cpu in (AVX2_CPU, AVX512_BF16_CPU):
        assert choose_precision("auto", on_gpu=True, cuda_bf16=cuda_bf16, cpu=cpu).precision == expected


@pytest.mark.parametrize("asked", ["bf16-mixed", "bf16", "bf16-true"])
def test_explicit_bf16_on_a_cpu_without_native_bf16_runs_with_one_warning_line(asked) -> None:
    choice = choose_precision(asked, on_gpu=False, cuda_bf16=False, cpu=AVX2_CPU)
    assert choice.precision == ("bf16-true" if asked == "bf16-true" else "bf16-mixed")
    assert choice.warning is not None and "\n" not in choice.warning
    assert "several times slower" in choice.warning and "trainer.precision=auto" in choice.warning
    assert "AVX2, no native bf16" in choice.warning
    for cpu in (AVX512_BF16_CPU,):  # native: no warning; fp32 anywhere: no warning
        assert choose_precision(asked, on_gpu=False, cuda_bf16=False, cpu=cpu).warning is None
    assert choose_precision("32-true", on_gpu=False, cuda_bf16=False, cpu=AVX2_CPU).warning is None
    assert choose_precision(asked, on_gpu=True, cuda_bf16=True, cpu=AVX2_CPU).warning is None


def test_a_value_that_is_not_a_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="fp8"):
        choose_precision("fp8", on_gpu=False, cuda_bf16=False, cpu=AVX2_CPU)


@pytest.mark.parametrize("kwargs,expected", [
    ({"on_gpu": False, "precision": "32-true", "cpu": AVX2_CPU}, True),         # oneDNN NHWC kernels
    ({"on_gpu": False, "precision": "bf16-mixed", "cpu": AVX512_BF16_CPU}, True),
    ({"on_gpu": False, "precision": "32-true", "cpu": PLAIN}, False),
    ({"on_gpu": True, "precision": "bf16-mixed", "cpu": AVX2_CPU}, True),       # tensor cores
    ({"on_gpu": True, "precision": "32-true", "cpu": AVX2_CPU}, False),
])
def test_channels_last_auto(kwargs, expected) -> None:
    assert choose_channels_last("auto", **kwargs)[0] is expected
    assert choose_channels_last(not expected, **kwargs) == (not expected, "asked for")


def test_onednn_isa_cap_decides_whether_bf16_instructions_are_used() -> None:
    assert onednn_isa_allows_bf16({})
    assert onednn_isa_allows_bf16({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"})
    assert not onednn_isa_allows_bf16({"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert not onednn_isa_allows_bf16({"DNNL_MAX_CPU_ISA": "avx512_core"})  # Skylake level: no bf16 dot products


def test_machine_settings_resolve_both_keys_from_the_given_machine() -> None:
    avx2 = machine_settings("auto", "auto", "auto", cuda=(False, False), cpu=AVX2_CPU)
    assert (avx2.precision.precision, avx2.channels_last) == ("32-true", True)
    assert avx2.record()["precision_requested"] == "auto" and avx2.record()["cpu"]["native_bf16"] is False
    native = machine_settings("auto", False, "cpu", cuda=(True, True), cpu=AVX512_BF16_CPU)
    assert (native.precision.precision, native.channels_last, native.on_gpu) == ("bf16-mixed", False, False)


def _detect_in(env: dict[str, str]) -> dict:
    code = ("import json; from neo.training.precision import detect_cpu; c = detect_cpu(); "
            "print(json.dumps(c.as_dict()))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_detection_follows_the_isa_torch_may_use() -> None:
    """ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY (what imitates an AVX2 machine) change what detection reads."""
    capped = _detect_in(AVX2_ENV)
    assert capped == {"isa": "AVX2", "onednn_bf16": False, "bf16_instructions": False, "native_bf16": False}
    here = detect_cpu()
    assert _detect_in({})["native_bf16"] == here.native_bf16


def test_explicit_bf16_on_an_avx2_cpu_warns_once_and_still_trains_in_bf16(tmp_path: Path) -> None:
    """A real Trainer from conf/trainer (make_trainer) in a process that sees an AVX2 CPU."""
    code = ("import logging; logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')\n"
            "from neo.training.machine import make_trainer\n"
            "t = make_trainer(accelerator='cpu', devices=1, precision='bf16-mixed', logger=False, "
            "enable_progress_bar=False, enable_checkpointing=False)\n"
            "print('PRECISION', t.precision)\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **AVX2_ENV, "PYTHONWARNINGS": "ignore"},
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    text = out.stdout + out.stderr
    warnings = [line for line in text.splitlines() if "several times slower" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING trainer.precision=bf16-mixed on this CPU (AVX2")
    assert "PRECISION bf16-mixed" in text


def test_channels_last_must_be_a_boolean_or_auto(synth_root: Path, tmp_path: Path) -> None:
    check_config(compose_train(train_overrides(synth_root, tmp_path, "channels_last=auto")), machine=False)
    with pytest.raises(ConfigError, match=r"channels_last='sometimes' must be true, false or auto"):
        check_config(compose_train(train_overrides(synth_root, tmp_path, "channels_last=sometimes")), machine=False)


def test_a_run_records_the_resolved_precision_and_its_speed_check(synth_root: Path, tmp_path: Path) -> None:
    """trainer.precision=auto and channels_last=auto are resolved for this CPU, written into the run config (what the
    checkpoint keeps for neo-eval) and the summary, with the warm-up-free loop figures."""
    from neo.checkpoints.format import read_neo
    from neo.training.report import summary_record
    from neo.training.run import train

    cfg = compose_train(train_overrides(synth_root, tmp_path, "model=tiny", "trainer.precision=auto",
                                        "channels_last=auto", "trainer.max_epochs=2", "logger=none"))
    summary = train(cfg)
    expected = machine_settings("auto", "auto", "cpu", cuda=(False, False), cpu=detect_cpu())
    assert summary.precision == expected.precision.precision == summary.machine["precision"]
    assert summary.machine["precision_requested"] == "auto" and summary.machine["channels_last"] is True
    assert summary.throughput["timed_batches"] == 2 * (24 // 4) - WARMUP_BATCHES  # every batch after the warm-up
    assert 0 < summary.throughput["images_per_s"] <= summary.throughput["step_images_per_s"]
    assert summary.throughput["cpu_images_per_s"] > 0
    record = json.loads(json.dumps(summary_record(summary)))
    assert record["machine"]["precision"] == expected.precision.precision
    run_config = read_neo(summary.last_checkpoint, key=None, mmap=True, need_config=False).content[
        "hyper_parameters"]["run_config"]
    assert run_config["trainer"]["precision"] == expected.precision.precision and run_config["channels_last"] is True
