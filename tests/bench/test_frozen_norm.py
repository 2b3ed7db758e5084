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
    assert "has no PResNet backbone" in capsys.readouterr().err
