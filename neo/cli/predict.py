"""`neo-predict`: detect objects in an image, a folder of images or a video with a trained checkpoint.

    neo-predict checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt source=photo.jpg
    neo-predict checkpoint=best.ckpt source=clip.mp4 score_threshold=0.5
    neo-predict checkpoint=best.ckpt source=frames/ nms_iou=0.5 threads=1
Writes drawn images (or an annotated .mp4) and predictions.json (original pixels, category names).
A missing option, a mistyped key ("did you mean score_threshold?") or an unusable checkpoint or source is one
paragraph on stderr naming it and the fix; exit 1, no traceback.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


def option_problems(cfg: DictConfig) -> str | None:
    """Unknown keys ("did you mean") and missing checkpoint=/source= in one message, or None; imports no torch."""
    from neo.cli.required import option_problems

    return option_problems(cfg, "predict", "neo-predict",
                           {"checkpoint": "neo checkpoint: path, URL or bare file name",
                            "source": "image, folder of images or video file"},
                           "neo-predict checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt source=photo.jpg")


def run(cfg: DictConfig) -> int:
    """Check the options, predict and write outputs into ``output_dir``; returns an exit code."""
    from neo.cli.output import print_user_error

    problems = option_problems(cfg)
    return print_user_error("neo-predict", problems) if problems else predict(cfg)


def predict(cfg: DictConfig) -> int:
    """Predict for a config whose options were checked and print what was written; returns an exit code."""
    from neo.cli.output import USER_ERRORS, print_user_error
    from neo.console import stdout_console
    from neo.inference.predict import predict_source

    console = stdout_console()
    try:
        result = predict_source(cfg, console=console)
    except USER_ERRORS as exc:  # CheckpointError, an unreadable source, bad options: one paragraph
        return print_user_error("neo-predict", exc)
    nms = f"NMS at IoU {result['nms_iou']:g}" if result["nms_iou"] is not None else "no NMS (nms_iou=0.5 merges duplicates)"
    console.print(f"neo-predict: {result['images']} image(s)/frame(s), {result['detections']} detection(s) with score "
                  f">= {cfg.score_threshold}, {nms}, {result['threads']} torch thread(s)\n"
                  f"predictions: {result['predictions_file']}\ndrawn: {result['drawn'] or '-'}",
                  markup=False, highlight=False, soft_wrap=True)
    return 0


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    from neo.cli.required import start_checked

    start_checked("neo-predict", cfg, option_problems)
    code = predict(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    """Console-script entry point: ``neo-predict [hydra flags] key=value ...``; a mistyped key gets "did you mean"."""
    from neo.cli.override_errors import run_hydra_main

    run_hydra_main("neo-predict", _hydra_main)


if __name__ == "__main__":
    main()
