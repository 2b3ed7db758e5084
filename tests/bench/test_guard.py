"""neo-bench guard: the demo's settings as the bench needs them, the pass/fail rule, and the bench's JSON rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neo.bench import train as bench_train
from neo.bench.guard import MAX_SLOWDOWN, MIN_RATIO, Rate, demo_settings, other_precision, verdict
from neo.training.machine import machine_settings


def _verdict(train: float, bench: float, chosen: float, other: float, busy: bool = False,
             train_wall: float | None = None) -> list[str]:
    """CPU-time rates as given; wall rates equal to them unless ``train_wall`` says otherwise."""
    wall = train if train_wall is None else train_wall
    return verdict(Rate(wall, train), Rate(bench, bench), Rate(chosen, chosen), Rate(other, other), busy=busy,
                   min_ratio=MIN_RATIO, max_slowdown=MAX_SLOWDOWN)


def test_the_guard_passes_at_the_bench_pace_with_the_faster_precision() -> None:
    assert _verdict(train=8.7, bench=9.0, chosen=9.0, other=1.5) == []
    assert _verdict(train=6.4, bench=9.0, chosen=9.0, other=10.7) == []  # 0.71x and 1.19x: inside both limits


def test_a_slow_loop_fails_whatever_the_machine_speed() -> None:
    for scale in (1.0, 0.1):  # a 10x slower machine: the same ratios, the same verdict
        failures = _verdict(train=6.0 * scale, bench=9.0 * scale, chosen=9.0 * scale, other=1.5 * scale)
        assert [f.split(":")[0] for f in failures] == [
            "neo-train reaches 0.67x the bench's images per CPU-second (must be >= 0.70x)",
            "neo-train reaches 0.67x the bench's images per second (must be >= 0.70x)"]


def test_on_a_busy_machine_only_the_wall_clock_ratio_is_not_judged() -> None:
    assert _verdict(train=8.7, bench=9.0, chosen=9.0, other=1.5, train_wall=4.0, busy=True) == []
    (failure,) = _verdict(train=8.7, bench=9.0, chosen=9.0, other=1.5, train_wall=4.0, busy=False)
    assert failure.startswith("neo-train reaches 0.44x the bench's images per second")
    (failure,) = _verdict(train=5.0, bench=9.0, chosen=9.0, other=1.5, busy=True)  # CPU time: always judged
    assert failure.startswith("neo-train reaches 0.56x the bench's images per CPU-second")


def test_the_slow_precision_fails_with_the_fix() -> None:
    (failure,) = _verdict(train=1.5, bench=1.5, chosen=1.5, other=10.7)  # bf16 forced on an AVX2 CPU
    assert failure.startswith("the chosen precision is 7.13x slower than the other one (at most 1.20x allowed)")
    assert "trainer.precision=auto" in failure


def test_demo_settings_are_the_demo_recipe_resolved_for_this_machine() -> None:
    settings = demo_settings([])
    machine = machine_settings("auto", "auto", "cpu")
    assert (settings.preset, settings.batch, settings.accumulate, settings.threads) == ("tiny", 8, 1, 1)
    assert settings.size.count("x") == 1 and settings.num_classes == 5
    assert (settings.precision, settings.channels_last) == (machine.precision.precision, machine.channels_last)
    forced = demo_settings(["trainer.precision=bf16-mixed", "data.resolution=640x360"])
    assert (forced.precision, forced.size, forced.why) == ("bf16-mixed", "640x360", "bf16-mixed")
    assert other_precision("bf16-mixed") == "32-true" and other_precision("32-true") == "bf16-mixed"


@pytest.mark.parametrize("precisions", [["auto", "32-true"]])
def test_bench_train_writes_its_rows_with_the_resolved_precision(precisions, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rows.json"
    assert bench_train.main(["--preset", "tiny", "--size", "320x180", "--batch", "2", "--steps", "1", "--warmup", "1",
                             "--threads", "1", "--num-classes", "3", "--accelerator", "cpu", "--json", str(out),
                             "--precision", *precisions]) == 0
    result = json.loads(out.read_text())
    auto = machine_settings("auto", "auto", "cpu")
    assert [(r["requested"], r["precision"], r["channels_last"]) for r in result["rows"]] == [
        ("auto", auto.precision.precision, auto.channels_last), ("32-true", "32-true", auto.channels_last)]
    assert all(r["images_per_s"] > 0 and r["cpu_images_per_s"] > 0 for r in result["rows"])
    assert result["cpu"] == auto.cpu.as_dict()
    printed = capsys.readouterr().out
    assert f"cpu={auto.cpu.describe()}" in printed and f"{auto.precision.precision} (auto)" in printed


def test_bench_train_compiles_the_backbone_and_encoder_in_place_and_keeps_parameter_names() -> None:
    """What ``neo-bench train --compile on`` builds (compiling itself is not run here: minutes on 2 cores)."""
    eager = bench_train.build_module("tiny", 3, channels_last=False)
    compiled = bench_train.build_module("tiny", 3, channels_last=False, compile_net=True)
    net = compiled.net
    assert net.backbone._compiled_call_impl is not None and net.encoder._compiled_call_impl is not None
    assert net.decoder._compiled_call_impl is None  # query selection has data-dependent shapes: left eager
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert bench_train.build_parser().parse_args(["--compile", "both"]).compile == "both"
