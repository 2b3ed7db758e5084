"""`neo-predict`: detect objects in an image, a folder of images or a video with a trained checkpoint.

    neo-predict checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt source=photo.jpg
Writes drawn images (or an annotated .mp4) and predictions.json (original pixels, category names).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


def run(cfg: DictConfig) -> int:
    """Predict and write outputs into ``output_dir``; returns an exit code."""
    from neo.cli.required import missing_options
    from neo.inference.predict import predict_source

    missing = missing_options(cfg, "neo-predict", {"checkpoint": "neo checkpoint: path, URL or bare file name",
                                                   "source": "image, folder of images or video file"},
                              "neo-predict checkpoint=outputs/runs/cpu_demo/checkpoints/best.ckpt source=photo.jpg")
    if missing:
        print(f"neo-predict: {missing}", file=sys.stderr)
        return 1
    try:
        result = predict_source(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"neo-predict: {exc}", file=sys.stderr)
        return 1
    print(f"neo-predict: {result['images']} image(s)/frame(s), {result['detections']} detection(s) "
          f"with score >= {cfg.score_threshold}\npredictions: {result['predictions_file']}\n"
          f"drawn: {result['drawn'] or '-'}")
    return 0


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    code = run(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    """Console-script entry point."""
    _hydra_main()


if __name__ == "__main__":
    main()
