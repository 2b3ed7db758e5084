"""Run a checkpoint on an image, a folder or a video (``neo-predict``): drawn outputs + predictions JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig

from neo.checkpoints.load import (
    VIDEO_SUFFIXES,
    eval_size_of,
    iter_sources,
    load_checkpoint_module,
    predict_images,
)
from neo.checkpoints.resume import resolve_identifier


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_nms(module: Any, nms_iou: object) -> float | None:
    """Merge duplicates: class-aware NMS at IoU ``nms_iou`` in the model's postprocessor (None: leave it).

    RT-DETR needs no NMS by design and ships without it; a briefly trained model can still put several
    boxes on one object, which ``nms_iou=0.5`` merges. Returns the threshold in effect.
    """
    postprocessor = module.postprocessor
    if nms_iou is None:
        return postprocessor.nms_iou_threshold
    try:
        value = float(nms_iou)
    except (TypeError, ValueError):
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise ValueError(f"nms_iou={nms_iou!r} is not an IoU: use a number in (0, 1], e.g. nms_iou=0.5 "
                         "(boxes of one class overlapping more than that are merged), or null for none")
    postprocessor.nms_iou_threshold = value
    return value


def predict_source(cfg: DictConfig, console: Any = None) -> dict[str, Any]:
    """Predict every image/frame of ``cfg.source``; returns counts and the files written.

    ``cfg.threads`` sets the CPU threads first (:mod:`neo.inference.threads`); ``cfg.nms_iou`` merges
    duplicates (:func:`set_nms`); ``cfg.progress`` shows a progress bar with images/s on ``console``.
    """
    from neo.data.sizes import check_16x9
    from neo.evaluation.draw import draw_prediction
    from neo.evaluation.outputs import prediction_record, write_predictions
    from neo.inference.progress import count_source, prediction_progress
    from neo.inference.threads import configure_threads

    threads = configure_threads(cfg.get("threads", "auto"))
    path = resolve_identifier(str(cfg.checkpoint), cfg.get("storage"), key="checkpoint")
    device = _device(str(cfg.device))
    module = load_checkpoint_module(path, weights=str(cfg.weights), value=cfg.checkpoint).to(device)
    nms_iou = set_nms(module, cfg.get("nms_iou"))
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

    with prediction_progress(console, enabled=bool(cfg.get("progress", True))) as progress:
        task = progress.add_task(f"predict {source.name}", total=count_source(source))
        for item in iter_sources(source):
            pending.append(item)
            if len(pending) >= int(cfg.batch_size):
                done = len(pending)
                flush()
                progress.advance(task, done)
        done = len(pending)
        flush()
        progress.advance(task, done)
    if writer is not None:
        writer.release()
    predictions_file = write_predictions(
        out / "predictions.json", records, checkpoint=str(path), weights=module.loaded_weights,
        source=str(source), canvas_size=list(size), class_names=names, score_threshold=float(cfg.score_threshold),
        nms_iou=nms_iou,
    )
    drawn = (out / f"{source.stem}_pred.mp4") if is_video else out
    return {"images": len(records), "detections": total, "predictions_file": predictions_file,
            "drawn": drawn if cfg.draw else None, "threads": threads, "nms_iou": nms_iou}


def _fps(video: Path) -> float:
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    capture.release()
    return float(fps) if np.isfinite(fps) and fps > 0 else 25.0
