"""16:9 size parsing and validation errors."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from neo.data.sizes import check_16x9, check_sizes, ladder, nearest_16x9, parse_size


def test_parse_forms_give_height_width():
    assert parse_size("1080p") == (1080, 1920)
    assert parse_size("1920x1080") == (1080, 1920)  # users write W x H
    assert parse_size("1280×720") == (720, 1280)
    assert parse_size([720, 1280]) == (720, 1280)
    assert parse_size(OmegaConf.create({"s": [360, 640]}).s) == (360, 640)
    assert parse_size("1440p") == (2560 * 9 // 16, 2560)


@pytest.mark.parametrize("value", ["big", [1080], "x1080", [0, 1920], "1920x-1"])
def test_parse_rejects_garbage_naming_the_key(value):
    with pytest.raises(ValueError, match="data.eval_size"):
        parse_size(value, key="data.eval_size")


def test_check_16x9_accepts_one_pixel_rounding():
    assert check_16x9([1080, 1920]) == (1080, 1920)
    assert check_16x9([368, 654]) == (368, 654)  # 654.2 -> within one pixel
    assert check_16x9("1366x768") == (768, 1366)


def test_non_16x9_error_names_key_value_and_nearest():
    with pytest.raises(ValueError) as err:
        check_16x9([544, 960], key="data.eval_size")
    msg = str(err.value)
    assert "data.eval_size" in msg and "544" in msg and "960x540" in msg
    # (h, w) swapped is a classic mistake: the message must say it is not 16:9
    with pytest.raises(ValueError, match=r"data.train_sizes\[1\].*not 16:9"):
        check_sizes([[720, 1280], [1280, 720]], key="data.train_sizes")
    assert nearest_16x9((480, 640)) == (360, 640)  # keeps the width


def test_ladder_is_16x9_and_matches_the_recipe():
    sizes = ladder("1080p", [0.833, 0.917, 1.0, 1.083, 1.167])
    assert sizes == [(900, 1600), (990, 1760), (1080, 1920), (1170, 2080), (1260, 2240)]
    assert ladder("360p", [0.75, 1.0, 1.25]) == [(270, 480), (360, 640), (450, 800)]
    with pytest.raises(ValueError, match="empty"):
        check_sizes([], key="data.train_sizes")


def test_sizes_import_pulls_in_neither_lightning_nor_cv2():
    import subprocess
    import sys

    code = "import sys, neo.data.sizes; print('lightning' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]  # models may import sizes without the data stack
