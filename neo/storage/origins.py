"""Original sources of pretrained weights: a URL (https/file/any fsspec URL), timm, or Ultralytics assets.

Each fetcher writes the weight file to ``dest`` (a temp path chosen by the resolver, which then
verifies and renames it into the cache). timm and Ultralytics are imported only when used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import fsspec
from fsspec.callbacks import DEFAULT_CALLBACK, Callback

from neo.storage.registry import RegistryEntry


def fetch_url(url: str, dest: Path, callback: Callback = DEFAULT_CALLBACK) -> Path:
    """Copy any fsspec URL (``https://``, ``file://``, ``s3://`` ...) to ``dest``."""
    fs, path = fsspec.core.url_to_fs(url)
    fs.get_file(path, str(dest), callback=callback)
    return dest


def fetch_timm(model_name: str, dest: Path) -> Path:
    """Create the timm model with its pretrained weights (HF hub / timm URLs) and save its state_dict."""
    import timm
    import torch

    model = timm.create_model(model_name, pretrained=True)
    torch.save(model.state_dict(), dest)
    return dest


def fetch_ultralytics(asset: str, dest: Path) -> Path:
    """Download an Ultralytics release asset (``yolo11n.pt`` ...) in a scratch dir and move it to ``dest``."""
    from ultralytics.utils.downloads import attempt_download_asset

    with tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
        cwd = os.getcwd()
        os.chdir(scratch)  # attempt_download_asset writes into the working directory
        try:
            got = Path(attempt_download_asset(asset)).resolve()
        finally:
            os.chdir(cwd)
        if not got.is_file():
            raise FileNotFoundError(f"Ultralytics did not produce {asset} (got {got}).")
        shutil.copyfile(got, dest)
    return dest


def fetch_origin(entry: RegistryEntry, dest: Path, callback: Callback = DEFAULT_CALLBACK) -> Path:
    """Fetch ``entry`` from its original source into ``dest``; returns ``dest``."""
    kind, value = next(iter(entry.origin.items()))
    if kind == "url":
        return fetch_url(value, dest, callback)
    if kind == "timm":
        return fetch_timm(value, dest)
    if kind == "ultralytics":
        return fetch_ultralytics(value, dest)
    raise ValueError(f"Unknown origin {kind!r} for {entry.name}; use url, timm or ultralytics.")


def origin_url(entry: RegistryEntry) -> str:
    """The URL whose host serves ``entry`` (checked to resolve before fetching): the URL itself, the Hugging Face
    hub for timm (``$HF_ENDPOINT`` if set), GitHub for Ultralytics release assets."""
    kind, value = next(iter(entry.origin.items()))
    if kind == "url":
        return value
    if kind == "timm":
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return "https://github.com"


def describe_origin(entry: RegistryEntry) -> str:
    kind, value = next(iter(entry.origin.items()))
    return value if kind == "url" else f"{kind}:{value}"
