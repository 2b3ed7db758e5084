"""The real console scripts end to end: neo-train, neo-eval, neo-predict.

One subprocess per command, as a user types it (the trained run, neo-eval with the EMA weights, neo-predict on
a folder); the rest of the matrix runs the same entry points in this process (``run_cli``), where the process
boundary is not what is tested."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch

from tests.conftest import train_overrides
from tests.support.commands import BIN, ENV, run_cli, run_command, tail  # noqa: F401 - BIN, ENV: imported from here


def _run(command: str, *args: str, cwd: Path, in_process: bool = False):
    """``command ARGS``: a new process, or with ``in_process`` its entry point in this one (same result type)."""
    return run_cli(command, *args, cwd=cwd) if in_process else run_command(command, *args, cwd=cwd)


def _tiny(synth_root: Path, out: Path, *extra: str) -> list[str]:
    return train_overrides(synth_root, out, "model=tiny", "data.num_workers=0", *extra)


@pytest.fixture(scope="module")
def trained(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch run (debug=limit: 4 train / 2 val batches) with checkpoints, logs and metrics."""
    out = tmp_path_factory.mktemp("run")
    result = _run("neo-train", *_tiny(synth_root, out, "debug=limit", "trainer.max_epochs=1", "run_name=e2e",
                                      "callbacks.ema.decay=0.9", "callbacks.ema.ramp=0"), cwd=out)
    assert result.returncode == 0, tail(result)
    assert "neo-train: finished" in result.stdout and "AP50 (val, best)" in result.stdout
    return out / "outputs/runs/e2e-debug-limit"  # a debug run: its own folder


def test_neo_train_debug_fast(synth_root: Path, tmp_path: Path) -> None:
    result = _run("neo-train", *_tiny(synth_root, tmp_path, "debug=fast"), cwd=tmp_path, in_process=True)
    assert result.returncode == 0, tail(result)
    assert "neo-train: finished" in result.stdout
    assert "epochs / optimizer steps │ 1 / 1" in result.stdout


def test_neo_train_run_folder_checkpoints_and_logs(trained: Path) -> None:
    checkpoints = trained / "checkpoints"
    assert (checkpoints / "best.ckpt").is_file() and (checkpoints / "last.ckpt").is_file()
    ckpt = torch.load(checkpoints / "last.ckpt", weights_only=True)  # plain hyper-parameters
    assert ckpt["global_step"] == 4 and ckpt["hyper_parameters"]["class_names"] == ["circle", "rectangle", "triangle"]
    assert (trained / ".hydra/config.yaml").is_file() and list((trained / "tensorboard").glob("events.*"))
    header = (next((trained / "csv").glob("version_*")) / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in ("train/loss", "train/loss_vfl", "lr-AdamW/backbone", "lr-AdamW/rest_no_decay",
                   "train/epoch_images_per_s", "val/AP", "val/AP50"):
        assert column in header, f"{column} not logged: {header}"


@pytest.mark.parametrize("weights", ["ema", "raw"])
def test_neo_eval_writes_metrics_and_coco_detections(trained: Path, tmp_path: Path, weights: str) -> None:
    result = _run("neo-eval", f"checkpoint={trained}/checkpoints/last.ckpt", f"weights={weights}",
                  f"output_dir={tmp_path}/eval", f"paths.root_dir={tmp_path}", "num_workers=0", cwd=tmp_path,
                  in_process=weights == "raw")  # one real process (ema), the other choice in-process
    assert result.returncode == 0, tail(result)
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert metrics["weights"] == weights and metrics["split"] == "val" and metrics["global_step"] == 4
    assert set(metrics["metrics"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    detections = json.loads((tmp_path / "eval/detections.json").read_text())
    categories = {c["id"] for c in json.loads(Path(metrics["annotation_file"]).read_text())["categories"]}
    assert detections and {d["category_id"] for d in detections} <= categories
    assert set(detections[0]) == {"image_id", "category_id", "bbox", "score"}


def test_neo_predict_image_folder_and_video(trained: Path, synth_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    frames = [cv2.imread(str(p)) for p in sorted((synth_root / "val").glob("*.jpg"))[:3]]
    for i, frame in enumerate(frames[:2]):
        cv2.imwrite(str(folder / f"img{i}.jpg"), cv2.resize(frame, (400, 300)))  # not 16:9: letterboxed
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    ckpt = f"checkpoint={trained}/checkpoints/best.ckpt"
    for source, name in ((folder, "folder"), (video, "video")):
        result = _run("neo-predict", ckpt, f"source={source}", "score_threshold=0.0", f"output_dir={tmp_path}/{name}",
                      f"paths.root_dir={tmp_path}", cwd=tmp_path, in_process=name == "video")
        assert result.returncode == 0, tail(result)
    images = json.loads((tmp_path / "folder/predictions.json").read_text())["images"]
    assert [r["file"] for r in images] == ["img0.jpg", "img1.jpg"] and images[0]["width"] == 400
    first = images[0]["detections"][0]
    assert first["category_name"] in ("circle", "rectangle", "triangle") and len(first["bbox_xyxy"]) == 4
    assert (tmp_path / "folder/img0_pred.jpg").is_file()
    frames_json = json.loads((tmp_path / "video/predictions.json").read_text())["images"]
    assert [r["frame"] for r in frames_json] == [0, 1, 2] and (tmp_path / "video/clip_pred.mp4").stat().st_size > 0
    for name in ("folder", "video"):  # no empty files (an unused predict.log) in the output folder
        assert not [p.name for p in (tmp_path / name).iterdir() if p.stat().st_size == 0]


def test_bad_override_exits_1_with_named_error(synth_root: Path, tmp_path: Path) -> None:
    result = _run("neo-train", *_tiny(synth_root, tmp_path, "optim.lr=0", "trainer.accumulate_grad_batches=0"),
                  cwd=tmp_path)
    assert result.returncode == 1
    assert "optim.lr=0" in result.stderr and "trainer.accumulate_grad_batches=0" in result.stderr  # a user error
    assert "optim.lr=0" not in result.stdout
