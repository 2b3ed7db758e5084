"""The run-level keys of ``train.yaml`` (run_name, seed, torch_threads, ckpt_path, pretrained), checked torch-free.

:func:`looks_like_local_path` is neo's one answer to "did the user mean a file on this machine?":
an identifier that is not a URL and starts like a path (``/``, ``./``, ``../``, ``~``) or contains a
path separator. Anything else (``r2://...``, a bare filename, ``timm/convnext_tiny``-style registry
names are resolved through neo.storage, which reports its own errors).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neo.config_problems import is_integer, problem
from neo.cores import available_cores

CKPT_KEYWORDS = ("auto", "last", "best")


def looks_like_local_path(value: str, *, registry_names_have_slashes: bool = False) -> bool:
    """True when ``value`` is meant as a local file (not a URL, bare filename or registry name).

    With ``registry_names_have_slashes`` (weights identifiers such as ``timm/convnext_tiny``) only an
    explicit start (``/``, ``./``, ``../``, ``~``) counts; otherwise any path separator does too.
    """
    if "://" in value:
        return False
    if value.startswith(("/", "./", "../", "~")):
        return True
    return not registry_names_have_slashes and os.sep in value


def run_problems(cfg: Mapping[str, Any]) -> list[str]:
    """Every invalid run-level value of the composed config, one message each."""
    out = []
    name = str(cfg.get("run_name", "default"))
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        out.append(problem("run_name", name, "is not a folder name", "use letters, digits, '-', '_' or '.' (no slashes)"))
    seed = cfg.get("seed", 0)
    if seed is not None and (not is_integer(seed) or not 0 <= seed < 2**32):
        out.append(problem("seed", seed, "must be an integer in [0, 2**32)", "use e.g. seed=42"))
    threads = cfg.get("torch_threads")
    if threads is not None and (not is_integer(threads) or threads < 1):
        out.append(problem("torch_threads", threads, "must be an integer >= 1 or null",
                           f"use null (torch's default) or 1..{available_cores()} (the cores available here)"))
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None and str(ckpt) not in CKPT_KEYWORDS:
        ckpt = str(ckpt)
        if looks_like_local_path(ckpt) and not Path(ckpt).expanduser().exists():
            out.append(problem("ckpt_path", ckpt, "does not exist",
                               "give an existing .ckpt, a bucket URL, a bare filename from the bucket, or ckpt_path=auto"))
    pretrained = cfg.get("pretrained")
    if pretrained:
        pretrained = str(pretrained)
        if looks_like_local_path(pretrained, registry_names_have_slashes=True) and not Path(pretrained).expanduser().is_file():
            out.append(problem("pretrained", pretrained, "is not a file",
                               "give an existing .pth/.ckpt, a bucket URL, a registry name (neo-weights list) or null"))
    return out
