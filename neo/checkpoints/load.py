"""Use a trained checkpoint: rebuild the module (EMA or raw weights) and predict on images or video.

The file is read, checked and its weights chosen by :mod:`neo.checkpoints.format` (the one reader
of neo checkpoints); this module turns it into a ready ``RTDETRModule`` and feeds it images.
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

from neo.checkpoints.format import check_state_dict_fits, read_neo
from neo.checkpoints.pretrained import PRETRAINED_KEYS
from neo.training.module import RTDETRModule

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


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


def load_checkpoint_module(path: str | Path, weights: str = "ema", key: str = "checkpoint",
                           value: Any = None) -> RTDETRModule:
    """RTDETRModule rebuilt from a neo checkpoint (read by :func:`neo.checkpoints.format.read_neo`)
    in eval mode on the CPU.

    weights: "ema" (the validated weights; the raw ones when EMA was off) or "raw". ``key``/``value``: the
    option the user named the file with, for the one-paragraph CheckpointError on a bad file.
    """
    checkpoint = read_neo(path, key=key, value=value)
    state, label = checkpoint.weights(weights)
    hparams = checkpoint.hparams
    hparams["model"] = _drop_pretrained(hparams["model"])
    module = RTDETRModule(**hparams)
    check_state_dict_fits(module.state_dict(), {**checkpoint.content, "state_dict": state}, path,
                          hparams["model"].get("name"), key=key)
    module.load_state_dict(state)
    module.loaded_weights = label
    module.checkpoint_epoch = checkpoint.epoch
    module.checkpoint_step = checkpoint.global_step
    return module.eval()


FALLBACK_SIZE = "640x360"


def eval_size_of(module: RTDETRModule) -> tuple[int, int]:
    """(H, W) canvas the model was validated at (data.eval_size, else data.resolution; imported official
    checkpoints carry 640x360). A checkpoint with neither gets 640x360 with a warning saying so."""
    from neo.data.sizes import check_16x9

    data = (module.hparams.get("run_config") or {}).get("data") or {}
    value = data.get("eval_size") or data.get("resolution")
    if not value:
        log.warning("the checkpoint carries no eval size (data.eval_size / data.resolution): using %s; pass "
                    "size=WxH (neo-predict) or --size (neo-export) for another", FALLBACK_SIZE)
        value = FALLBACK_SIZE
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
