"""One file holding several named numpy arrays that every process can memory-map read-only.

Layout: an 8-byte magic, the header length (uint64 little-endian), a UTF-8 JSON header
``{"meta": {...}, "arrays": {name: {"dtype", "shape", "offset"}}}`` and then each array's bytes at a
64-byte aligned offset. ``np.load(mmap_mode="r")`` cannot map the members of an ``.npz``, and a folder of
``.npy`` files cannot be replaced in one atomic step; one file written through
:func:`neo.files.atomic_path` can, so a reader sees either the old file or the new one, never a part.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from neo.config_problems import UserError
from neo.files import atomic_path

MAGIC = b"NEOARR1\n"
_ALIGN = 64


class ArrayFileError(UserError, ValueError):
    """The file is not a complete array file of this format (foreign, truncated or damaged)."""


def _aligned(position: int) -> int:
    return -(-position // _ALIGN) * _ALIGN


def write_array_file(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write ``arrays`` (any shapes, fixed-size dtypes) and the JSON-able ``meta`` to ``path`` atomically."""
    arrays = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
    entries, offset = {}, 0
    for name, value in arrays.items():
        entries[name] = {"dtype": value.dtype.str, "shape": list(value.shape), "offset": offset}
        offset = _aligned(offset + value.nbytes)
    header = json.dumps({"meta": meta, "arrays": entries}).encode()
    data_start = _aligned(len(MAGIC) + 8 + len(header))
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(MAGIC + struct.pack("<Q", len(header)) + header)
        for name, value in arrays.items():
            out.seek(data_start + entries[name]["offset"])
            out.write(value.tobytes())
        out.truncate(data_start + offset)
        out.flush()
        os.fsync(out.fileno())
    return Path(path)


def read_array_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, {name: read-only array memory-mapped from ``path``}); ArrayFileError if it is not whole."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ArrayFileError(f"{path} is not a neo array file")
        try:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
            meta, entries = header["meta"], header["arrays"]
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise ArrayFileError(f"{path} has a damaged header ({exc})") from None
    data_start = _aligned(len(MAGIC) + 8 + length)
    arrays = {}
    for name, entry in entries.items():
        dtype, shape = np.dtype(entry["dtype"]), tuple(entry["shape"])
        start = data_start + entry["offset"]
        if start + dtype.itemsize * int(np.prod(shape)) > size:
            raise ArrayFileError(f"{path} is truncated: array {name!r} ends past the end of the file")
        if 0 in shape:
            arrays[name] = np.empty(shape, dtype)
        else:
            arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=start, shape=shape)
    return meta, arrays
