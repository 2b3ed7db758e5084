"""16:9 sizes: parse "1080p" / "1920x1080" / [1080, 1920] into (height, width) and enforce 16:9.

Sizes are (height, width) everywhere in neo. Users write strings as W x H ("1920x1080"), as
they appear on screens; lists and tuples are always [height, width].
A size is valid 16:9 when the width is within one pixel of height * 16 / 9.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from neo.config_problems import UserError, problem


class SizeError(UserError, ValueError):
    """A size that cannot be parsed or is not 16:9; the message names the key, the value and the fix."""

# Named ladder: name -> (height, width). Every entry is exactly 16:9 (width a multiple of 32).
NAMED_SIZES: dict[str, tuple[int, int]] = {
    "360p": (360, 640),
    "540p": (540, 960),
    "720p": (720, 1280),
    "900p": (900, 1600),
    "1080p": (1080, 1920),
    "1440p": (1440, 2560),
}
# The 16:9 grid used to derive multi-scale ladders: width 32k, height 18k (exact 16:9).
GRID_W, GRID_H = 32, 18


def parse_size(value: object, key: str = "size") -> tuple[int, int]:
    """Parse a size into (height, width).

    Accepts a named size ("720p"), a "WxH" string ("1280x720"), or a [height, width] sequence.
    Does not check the aspect ratio; see `check_16x9`.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text in NAMED_SIZES:
            return NAMED_SIZES[text]
        parts = text.replace("×", "x").split("x")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            width, height = (int(p) for p in parts)
            return _positive((height, width), key, value)
        raise SizeError(problem(key, value, "is not a size", f"write a name ({', '.join(NAMED_SIZES)}), "
                                "'WIDTHxHEIGHT' such as '1920x1080', or a [height, width] list such as [1080, 1920]"))
    if isinstance(value, Sequence) or _is_list_like(value):
        items = list(value)  # type: ignore[arg-type]
        if len(items) == 2 and all(_is_int_like(v) for v in items):
            return _positive((int(items[0]), int(items[1])), key, value)
    raise SizeError(problem(key, value, "is not a size",
                            "use [height, width] (e.g. [1080, 1920]), '1920x1080' or a name such as '1080p'"))


def is_16x9(size: tuple[int, int]) -> bool:
    """True when width is within one pixel of height * 16 / 9."""
    height, width = size
    return abs(width * 9 - height * 16) <= 16


def nearest_16x9(size: tuple[int, int]) -> tuple[int, int]:
    """Nearest valid 16:9 (height, width) keeping the width: (round(width * 9 / 16), width)."""
    width = size[1]
    return (max(1, round(width * 9 / 16)), width)


def format_size(size: tuple[int, int]) -> str:
    """Render (height, width) as users write it: 'WxH'."""
    return f"{size[1]}x{size[0]}"


def check_16x9(value: object, key: str = "size") -> tuple[int, int]:
    """Parse `value` and raise ValueError naming `key`, the value and the nearest 16:9 size if not 16:9."""
    size = parse_size(value, key)
    if not is_16x9(size):
        near = nearest_16x9(size)
        raise SizeError(
            f"{key}={value!r} is (height={size[0]}, width={size[1]}) = {format_size(size)}, "
            f"which is not 16:9 (aspect {size[1] / size[0]:.4f}, expected 1.7778). "
            f"Nearest valid 16:9 size: {format_size(near)} (set {key}={list(near)} or "
            f"'{format_size(near)}')."
        )
    return size


def check_sizes(values: Iterable[object], key: str = "sizes") -> list[tuple[int, int]]:
    """Validate a list of sizes as 16:9; the error names the offending entry as key[i]."""
    values = list(values)
    if not values:
        raise SizeError(f"{key} is empty: give at least one 16:9 size such as ['720p'].")
    return [check_16x9(v, key=f"{key}[{i}]") for i, v in enumerate(values)]


def ladder(base: object, scales: Iterable[float], key: str = "resolution") -> list[tuple[int, int]]:
    """Multi-scale 16:9 sizes around `base`: width snapped to a multiple of 32, height = width * 9/16.

    ladder("1080p", [0.833, 1, 1.167]) -> [(900, 1600), (1080, 1920), (1260, 2240)].
    """
    height, width = check_16x9(base, key)
    out: list[tuple[int, int]] = []
    for s in scales:
        if s <= 0:
            raise ValueError(f"scale {s} in the multi-scale list must be > 0 (e.g. 0.75 or 1.25).")
        k = max(1, round(width * float(s) / GRID_W))
        size = (GRID_H * k, GRID_W * k)
        if float(s) == 1.0:
            size = (height, width)
        if size not in out:
            out.append(size)
    return sorted(out)


def _positive(size: tuple[int, int], key: str, value: object) -> tuple[int, int]:
    if size[0] <= 0 or size[1] <= 0:
        raise SizeError(problem(key, value, "is not a size: height and width must be positive", "use e.g. '1920x1080'"))
    return size


def _is_int_like(v: object) -> bool:
    try:
        return int(v) == float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _is_list_like(v: object) -> bool:
    return hasattr(v, "__iter__") and hasattr(v, "__len__") and not isinstance(v, (str, bytes, dict))
