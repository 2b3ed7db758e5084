"""Run a checkpoint on an image, a folder or a video (``neo-predict``): drawn outputs + predictions JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig

from neo.inference.loading import (
    VIDEO_SUFFIXES,
    eval_size_of,
    iter_sources,
    load_checkpoint_module,
    predict_images,
)
from neo.training.checkpoints import resolve_identifier


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def predict_source(cfg: DictConfig) -> dict[str, Any]:
    """Predict every image/frame of ``cfg.source``; returns counts and the files written."""
    from neo.data.sizes import check_16x9
    from neo.evaluation.draw import draw_prediction
    from neo.evaluation.outputs import prediction_record, write_predictions

    path = resolve_identifier(str(cfg.checkpoint), cfg.get("storage"))
    device = _device(str(cfg.device))
    module = load_checkpoint_module(path, weights=str(cfg.weights)).to(device)
    size = check_16x9(cfg.size, key="size") if cfg.get("size") else eval_size_of(module)
    names = list(module.hparams.get("class_names") or [str(i) for i in range(module.net.num_classes)])
    id_map = module.hparams.get("label_to_category_id")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = Path(cfg.source)
    is_video = source.suffix.lower() in VIDEO_SUFFIXES
    writer: cv2.VideoWriter | None = None
    records, total, pending = [], 0, []

    def flush() -> None:
        nonlocal writer, total
        if not pending:
            return
        preds = predict_images(module, [img for _, _, img in pending], size, device)
        for (name, frame, image), pred in zip(pending, preds, strict=True):
            info = {"file": name, "height": int(image.shape[0]), "width": int(image.shape[1])}
            if is_video:
                info["frame"] = frame
            record = prediction_record(pred, names, id_map, float(cfg.score_threshold), **info)
            total += len(record["detections"])
            records.append(record)
            if cfg.draw:
                drawn = cv2.cvtColor(draw_prediction(image, pred, names, float(cfg.score_threshold)),
                                     cv2.COLOR_RGB2BGR)
                if is_video:
                    if writer is None:
                        writer = cv2.VideoWriter(str(out / f"{source.stem}_pred.mp4"),
                                                 cv2.VideoWriter_fourcc(*"mp4v"), _fps(source),
                                                 (image.shape[1], image.shape[0]))
                    writer.write(drawn)
                else:
                    cv2.imwrite(str(out / f"{Path(name).stem}_pred.jpg"), drawn)
        pending.clear()

    for item in iter_sources(source):
        pending.append(item)
        if len(pending) >= int(cfg.batch_size):
            flush()
    flush()
    if writer is not None:
        writer.release()
    predictions_file = write_predictions(
        out / "predictions.json", records, checkpoint=str(path), weights=module.loaded_weights,
        source=str(source), canvas_size=list(size), class_names=names, score_threshold=float(cfg.score_threshold),
    )
    drawn = (out / f"{source.stem}_pred.mp4") if is_video else out
    return {"images": len(records), "detections": total, "predictions_file": predictions_file,
            "drawn": drawn if cfg.draw else None}


def _fps(video: Path) -> float:
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    capture.release()
    return float(fps) if np.isfinite(fps) and fps > 0 else 25.0
