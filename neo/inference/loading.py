"""Use a trained checkpoint: rebuild the module (raw or EMA weights) and predict on images or video.

A neo checkpoint's ``state_dict`` holds the EMA weights when EMA was on (Lightning's WeightAveraging
writes them there) and ``current_model_state`` the raw ones; without EMA both are the raw weights.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from neo.training.module import RTDETRModule
from neo.training.run import PRETRAINED_KEYS

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
WEIGHTS = ("ema", "raw")


def _drop_pretrained(model_cfg: dict) -> dict:
    """The checkpoint carries all weights: do not look for the backbone's pretrained file again."""
    model_cfg = copy.deepcopy(model_cfg)
    for dotted in PRETRAINED_KEYS:
        parent, _, leaf = dotted.rpartition(".")
        node: Any = model_cfg
        for part in parent.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = None
    return model_cfg


def load_checkpoint_module(path: str | Path, weights: str = "ema") -> RTDETRModule:
    """RTDETRModule from a neo checkpoint (``weights_only=True`` load) in eval mode on the CPU.

    weights: "ema" (the validated weights; same as raw when EMA was off) or "raw".
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights!r} is unknown: use 'ema' or 'raw'")
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    hparams = dict(ckpt.get("hyper_parameters") or {})
    if "model" not in hparams:
        raise ValueError(f"{path} is not a neo training checkpoint (no hyper_parameters.model)")
    hparams["model"] = _drop_pretrained(hparams["model"])
    module = RTDETRModule(**hparams)
    has_ema = "current_model_state" in ckpt
    imported = ckpt.get("neo_import") or {}  # written by `neo-weights import`: one set of weights
    if weights == "raw" and has_ema:
        state = ckpt["current_model_state"]
    else:
        if weights == "ema" and not has_ema and not imported:
            log.warning("%s was trained without EMA: evaluating its raw weights", path)
        state = ckpt["state_dict"]
    module.load_state_dict(state)
    module.loaded_weights = "ema" if (weights == "ema" and has_ema) else "raw"
    if imported:
        module.loaded_weights = "ema" if imported.get("state") == "ema.module" else "raw"
    module.checkpoint_epoch = int(ckpt.get("epoch", -1))
    module.checkpoint_step = int(ckpt.get("global_step", -1))
    return module.eval()


def eval_size_of(module: RTDETRModule) -> tuple[int, int]:
    """(H, W) canvas the model was validated at (data.eval_size, else data.resolution)."""
    from neo.data.sizes import check_16x9

    data = (module.hparams.get("run_config") or {}).get("data") or {}
    value = data.get("eval_size") or data.get("resolution") or "640x360"
    return check_16x9(value, key="data.eval_size")


def iter_sources(source: str | Path) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yield (name, frame_index, RGB uint8 [h, w, 3]) from an image, a folder of images, or a video."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"source={str(source)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for file in files:
            yield file.name, 0, _read_rgb(file)
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(source))
        if not capture.isOpened():
            raise FileNotFoundError(f"source={str(source)!r} cannot be opened as a video")
        index = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                yield source.name, index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            capture.release()
    elif source.is_file():
        yield source.name, 0, _read_rgb(source)
    else:
        raise FileNotFoundError(f"source={str(source)!r} is not an image, a folder of images or a video file")


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@torch.no_grad()
def predict_images(module: RTDETRModule, images: list[np.ndarray], size: tuple[int, int],
                   device: torch.device | str = "cpu") -> list[dict[str, torch.Tensor]]:
    """Letterbox RGB images into ``size`` (H, W), run the model, return detections in ORIGINAL pixels.

    Returns one dict per image: "scores" [K], "labels" [K], "boxes" [K, 4] xyxy (postprocessor output).
    """
    from neo.data.transforms import letterbox

    canvases, targets = [], []
    for image in images:
        canvas, _, params = letterbox(image, np.zeros((0, 4), np.float32), size)
        canvases.append(torch.from_numpy(canvas).permute(2, 0, 1))
        targets.append({
            "orig_size": torch.tensor(image.shape[:2], dtype=torch.int64, device=device),
            "letterbox": torch.from_numpy(params).to(device),
        })
    batch = torch.stack(canvases).to(device)
    preds = module.predict(batch, targets)
    return [{k: v.detach().cpu() for k, v in p.items()} for p in preds]
