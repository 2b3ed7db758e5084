"""`neo-predict`: detect objects in an image, a folder of images or a video with a trained checkpoint.

    neo-predict checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt source=photo.jpg
    neo-predict checkpoint=best.ckpt source=clip.mp4 score_threshold=0.5
    neo-predict checkpoint=best.ckpt source=frames/ nms_iou=0.5 threads=1
Writes drawn images (or an annotated .mp4) and predictions.json (original pixels, category names).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


def run(cfg: DictConfig) -> int:
    """Predict and write outputs into ``output_dir``; returns an exit code."""
    from rich.console import Console

    from neo.cli.required import missing_options
    from neo.inference.predict import predict_source

    missing = missing_options(cfg, "neo-predict", {"checkpoint": "neo checkpoint: path, URL or bare file name",
                                                   "source": "image, folder of images or video file"},
                              "neo-predict checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt source=photo.jpg")
    if missing:
        print(f"neo-predict: {missing}", file=sys.stderr)
        return 1
    console = Console()
    try:
        result = predict_source(cfg, console=console)
    except (FileNotFoundError, ValueError) as exc:
        print(f"neo-predict: {exc}", file=sys.stderr)
        return 1
    nms = f"NMS at IoU {result['nms_iou']:g}" if result["nms_iou"] is not None else "no NMS (nms_iou=0.5 merges duplicates)"
    console.print(f"neo-predict: {result['images']} image(s)/frame(s), {result['detections']} detection(s) with score "
                  f">= {cfg.score_threshold}, {nms}, {result['threads']} torch thread(s)\n"
                  f"predictions: {result['predictions_file']}\ndrawn: {result['drawn'] or '-'}",
                  markup=False, highlight=False, soft_wrap=True)
    return 0


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    from neo.cli.output import quiet_console

    quiet_console()
    code = run(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    """Console-script entry point."""
    _hydra_main()


if __name__ == "__main__":
    main()
