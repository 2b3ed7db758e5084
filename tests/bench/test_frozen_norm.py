"""neo-bench frozen-norm: both settings timed in one run, the ratio printed; presets without PResNet refused."""

from __future__ import annotations

import re

import pytest

from neo.bench.frozen_norm import main


def test_prints_folded_unfolded_and_their_ratio(capsys: pytest.CaptureFixture) -> None:
    assert main(["--preset", "tiny", "--size", "64x112", "--warmup", "0", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    folded = float(re.search(r"^folded +([\d.]+) s/forward", out, re.M).group(1))
    unfolded = float(re.search(r"^unfolded +([\d.]+) s/forward", out, re.M).group(1))
    ratio = float(re.search(r"^cost +unfolded / folded = ([\d.]+)x", out, re.M).group(1))
    # the times are printed to 4 decimals: the ratio of the printed times may differ by that rounding
    rounding = 5e-5 * (1 / folded + unfolded / folded**2) + 5e-4
    assert folded > 0 and unfolded > 0 and ratio == pytest.approx(unfolded / folded, abs=rounding)
    difference = float(re.search(r"^difference +max \|logit folded - logit unfolded\| = (\S+)", out, re.M).group(1))
    assert 0 < difference < 1e-3  # the two paths differ, by float rounding only


def test_refuses_a_preset_without_a_presnet_backbone(capsys: pytest.CaptureFixture) -> None:
    assert main(["--preset", "hgnetv2_l"]) == 2
    err = capsys.readouterr().err
    assert "has no PResNet backbone" in err
    offered = err.split("use one of ")[1].split()  # read from conf/model/: the R family and tiny (a narrow PResNet)
    assert [name.rstrip(",") for name in offered] == ["rtdetr_r101", "rtdetr_r18", "rtdetr_r34", "rtdetr_r50",
                                                       "rtdetr_r50m", "tiny"]
