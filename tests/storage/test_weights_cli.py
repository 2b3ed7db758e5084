"""neo-weights against the S3 server (b2://): list, pull, upload --dry-run, idempotent upload, push, verify."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from neo.cli import weights
from neo.storage import Registry
from tests.storage.conftest import BUCKET


@pytest.fixture
def registry_file(tmp_path) -> tuple[Path, dict[str, bytes]]:
    """A registry of 2 ultralytics + 1 timm models whose origins are local files (file:// URLs)."""
    files = {"ultralytics/yolo_a": ("yolo_a.pt", os.urandom(50_000)),
             "ultralytics/yolo_b": ("yolo_b.pt", os.urandom(60_000)),
             "timm/net_c": ("net_c.pth", os.urandom(70_000))}
    lines = ["models:"]
    for name, (file, data) in files.items():
        origin = tmp_path / "origin" / file
        origin.parent.mkdir(exist_ok=True)
        origin.write_bytes(data)
        lines += [f"  {name}:", f"    file: {file}", f"    origin: {{url: {origin.as_uri()}}}",
                  f"    sha256: '{hashlib.sha256(data).hexdigest()}'"]
    path = tmp_path / "registry.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, {name: data for name, (_, data) in files.items()}


def run(tmp_path, registry: Path, *args: str) -> int:
    return weights.main(["--bucket", f"b2://{BUCKET}", "--prefix", "neo", "--cache-dir", str(tmp_path / "cache"),
                         "--registry", str(registry), *args])


def puts(endpoint) -> list[str]:
    return [p for m, p in endpoint.requests if m in ("PUT", "POST", "DELETE")]


def test_packaged_registry_has_seed_models_and_backbones():
    reg = Registry.load()
    names = set(reg.names())
    assert {"ultralytics/yolo11n", "ultralytics/yolo11n-seg", "ultralytics/yolo11n-pose",
            "ultralytics/yolo_world_v2_s", "ultralytics/sam2_t", "timm/tf_efficientnetv2_s.in1k",
            "timm/convnext_tiny", "timm/vit_base_patch16_224", "rtdetr/presnet18vd_in1k",
            "rtdetr/presnet50vd_in1k", "timm/hgnetv2_b4.ssld_stage2_ft_in1k"} <= names
    assert reg.get("ultralytics/yolo_world_v2_s").file == "yolov8s-worldv2.pt"
    assert reg.get("timm/resnet18").origin == {"timm": "resnet18"}  # unlisted timm names still resolve


def test_upload_dry_run_then_upload_then_nothing(tmp_path, endpoint, registry_file, capsys):
    registry, data = registry_file
    assert run(tmp_path, registry, "upload", "--framework", "all", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "ULTRALYTICS SUMMARY: 2 would upload, 0 skipped, 0 failed" in out
    assert puts(endpoint) == []
    assert not (tmp_path / "cache").exists()

    assert run(tmp_path, registry, "upload", "--framework", "ultralytics") == 0
    out = capsys.readouterr().out
    assert "ULTRALYTICS SUMMARY: 2 uploaded, 0 skipped, 0 failed" in out and "TIMM" not in out
    assert run(tmp_path, registry, "upload", "--framework", "all") == 0
    out = capsys.readouterr().out
    assert "ULTRALYTICS SUMMARY: 0 uploaded, 2 skipped, 0 failed" in out
    assert "TIMM SUMMARY: 1 uploaded, 0 skipped, 0 failed" in out
    n = len(puts(endpoint))
    assert run(tmp_path, registry, "upload", "--framework", "all") == 0
    assert "0 uploaded, 1 skipped" in capsys.readouterr().out
    assert len(puts(endpoint)) == n  # the second upload uploads nothing

    assert run(tmp_path, registry, "list") == 0
    out = capsys.readouterr().out
    assert "ultralytics/yolo_a" in out and "timm/net_c" in out and "yes" in out
    assert run(tmp_path, registry, "verify") == 0
    assert "All hashes match." in capsys.readouterr().out


def test_pull_push_and_verify_detects_corruption(tmp_path, endpoint, registry_file, capsys):
    registry, data = registry_file
    assert run(tmp_path, registry, "pull", "timm/net_c") == 0
    cached = tmp_path / "cache" / "models/pretrained/timm/net_c.pth"
    assert cached.read_bytes() == data["timm/net_c"]
    ckpt = tmp_path / "exp1-last.ckpt"
    ckpt.write_bytes(b"checkpoint" * 100)
    assert run(tmp_path, registry, "push", str(ckpt)) == 0
    assert run(tmp_path, registry, "push", str(ckpt), "--as", "shared/other.ckpt") == 0
    keys = {p for _, p in endpoint.requests}
    assert f"/{BUCKET}/neo/checkpoints/exp1-last.ckpt" in keys and f"/{BUCKET}/neo/shared/other.ckpt" in keys
    assert run(tmp_path, registry, "push", str(ckpt), "--as", "../escape.ckpt") == 1
    capsys.readouterr()
    cached.write_bytes(b"tampered")
    assert run(tmp_path, registry, "verify") == 1
    assert "MISMATCH" in capsys.readouterr().out
