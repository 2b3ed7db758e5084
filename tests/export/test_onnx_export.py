"""ONNX export of the tiny preset at 360x640: onnxruntime equals PyTorch (CLI and library), opset, dynamic batch,
fused RepVGG, EMA weights by default, tie-robust comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from neo.export import DeployableDetector, check_parity, export_onnx, run_onnx, sample_images
from neo.export.onnx import ParityCheck, compare_detections
from neo.models.rtdetr.repvgg import RepVggBlock
from tests.support.commands import run_command

SIZE = (360, 640)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Lightning-format tiny checkpoint (3 classes) whose EMA (`state_dict`) and raw weights differ."""
    import lightning
    from omegaconf import OmegaConf

    from neo.checkpoints.official import default_optim_config
    from neo.models.rtdetr import load_preset_config
    from neo.training.module import RTDETRModule

    torch.manual_seed(0)
    model = OmegaConf.to_container(load_preset_config("tiny", 3), resolve=True)
    module = RTDETRModule(model=model, optim=default_optim_config(), class_names=["circle", "rectangle", "triangle"],
                          label_to_category_id=[1, 2, 3], run_config={"data": {"eval_size": "640x360"}})
    raw = {k: v.clone() for k, v in module.state_dict().items()}
    with torch.no_grad():  # "EMA" = raw + a small shift, so the two are told apart by their outputs
        for param in module.parameters():
            param.add_(0.05 * torch.randn_like(param))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"state_dict": module.state_dict(), "current_model_state": raw, "hyper_parameters": dict(module.hparams),
                "epoch": 1, "global_step": 10, "pytorch-lightning_version": lightning.__version__}, path)
    return path


def test_neo_export_cli_matches_pytorch_with_ema_weights(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.onnx"
    result = run_command("neo-export", "onnx", str(tiny_checkpoint), "--size", "640x360", "--out", str(out),
                         cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "input  images uint8 [batch, 3, 360, 640] RGB 0..255" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith("onnxruntime vs PyTorch (batch 2)"))
    scores = float(line.split("scores ")[1].split(" ")[0])
    boxes = float(line.split("boxes ")[1].split(" ")[0])
    assert scores <= 1e-4 and boxes <= 0.5 and line.split(")")[-2].endswith("px (atol 0.5") and " OK;" in line

    proto = onnx.load(str(out))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 16
    (image_input,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in image_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 360, 640] and image_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [o.name for o in proto.graph.output] == ["labels", "boxes", "scores"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["neo.weights"] == "ema" and json.loads(meta["neo.class_names"]) == ["circle", "rectangle", "triangle"]

    # the graph holds the EMA weights: it matches the EMA model and not the raw one
    from neo.checkpoints.load import load_checkpoint_module

    images = sample_images(3, SIZE, seed=5)  # a batch size the check did not use: dynamic batch
    got, _ = run_onnx(out, images)
    for weights, expect_match in (("ema", True), ("raw", False)):
        net = load_checkpoint_module(tiny_checkpoint, weights=weights).net
        with torch.no_grad():
            expected = [t.numpy() for t in DeployableDetector(net, 100)(images)]
        score_diff, _ = compare_detections(expected, got, 1e-4)
        assert (score_diff <= 1e-4) == expect_match, (weights, score_diff)


def test_export_library_fuses_repvgg_and_keeps_the_net_unchanged(tmp_path: Path) -> None:
    from neo.models.rtdetr import build_preset

    torch.manual_seed(0)
    net = build_preset("tiny", num_classes=3)[0].eval()
    for m in net.modules():  # non-trivial BN statistics so that fusing has something to get wrong
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    exported = export_onnx(net, tmp_path / "t.onnx", SIZE, num_top_queries=50, input_dtype="float32")
    blocks = [m for m in exported.modules() if isinstance(m, RepVggBlock)]
    assert blocks and all(hasattr(b, "conv") and not hasattr(b, "conv1") for b in blocks)  # fused
    assert all(hasattr(m, "conv1") for m in net.modules() if isinstance(m, RepVggBlock))  # the original is not
    convs = sum(isinstance(m, nn.Conv2d) for m in exported.modules())
    proto = onnx.load(str(tmp_path / "t.onnx"))
    assert sum(n.op_type == "Conv" for n in proto.graph.node) == convs  # one Conv per fused block, not three
    images = sample_images(2, SIZE, "float32", seed=3)
    check = check_parity(tmp_path / "t.onnx", DeployableDetector(net, 50), images)  # vs the UN-fused model
    assert check.ok and check.batch == 2 and check.max_score_diff <= 1e-4 and check.max_box_diff_px <= 0.5
    labels, boxes, scores = run_onnx(tmp_path / "t.onnx", images)[0]
    assert labels.shape == (2, 50) and labels.dtype == np.int64 and boxes.shape == (2, 50, 4)
    assert (np.diff(scores, axis=1) <= 0).all()
    # same detections as neo's PostProcessor (canvas-normalised xyxy without targets) scaled to pixels
    from neo.models.rtdetr import PostProcessor

    with torch.no_grad():
        preds = PostProcessor(num_classes=3, num_top_queries=50)(net(images))
    scale = np.array([SIZE[1], SIZE[0], SIZE[1], SIZE[0]], dtype=np.float32)
    reference = [np.stack([p["labels"].numpy() for p in preds]), np.stack([p["boxes"].numpy() * scale for p in preds]),
                 np.stack([p["scores"].numpy() for p in preds])]
    score_diff, box_diff = compare_detections(reference, [labels, boxes, scores], 1e-4)
    assert score_diff <= 1e-4 and box_diff <= 0.5


def test_discrete_sampling_exports_and_onnxruntime_equals_pytorch(tmp_path: Path) -> None:
    """dsp decoders (one gathered pixel per point) export as plain Gather ops, no GridSample."""
    from neo.models.rtdetr import build_preset

    torch.manual_seed(0)
    net = build_preset("tiny", num_classes=3, overrides={"net.decoder.sampling": "discrete"})[0].eval()
    with torch.no_grad():  # trained-like offsets and boxes: at init many points sit exactly on a rounding edge
        for name, p in net.decoder.named_parameters():
            if "sampling_offsets" in name or "bbox_head" in name:
                p.add_(torch.randn_like(p) * 0.05)
    export_onnx(net, tmp_path / "dsp.onnx", SIZE, num_top_queries=50, input_dtype="float32")
    assert not any(n.op_type == "GridSample" for n in onnx.load(str(tmp_path / "dsp.onnx")).graph.node)
    check = check_parity(tmp_path / "dsp.onnx", DeployableDetector(net, 50), sample_images(2, SIZE, "float32", seed=3))
    assert check.ok and check.max_score_diff <= 1e-4 and check.max_box_diff_px <= 0.5


def test_comparison_tolerates_swapped_near_ties_but_not_real_differences() -> None:
    labels = np.array([[2, 2, 0]])
    boxes = np.array([[[0, 0, 10, 10], [50, 50, 60, 60], [5, 5, 6, 6]]], dtype=np.float32)
    scores = np.array([[0.50000001, 0.5, 0.1]], dtype=np.float32)
    swapped = [labels, boxes[:, [1, 0, 2]], scores]  # the two tied detections change places
    assert compare_detections([labels, boxes, scores], swapped, 1e-4) == pytest.approx((0.0, 0.0), abs=1e-6)
    moved = boxes.copy()
    moved[0, 2, 0] += 3.0
    assert compare_detections([labels, boxes, scores], [labels, moved, scores], 1e-4)[1] == pytest.approx(3.0)
    relabelled = [np.array([[2, 2, 1]]), boxes, scores]
    assert compare_detections([labels, boxes, scores], relabelled, 1e-4)[1] == np.inf
    assert not ParityCheck(1, 2e-4, 0.0, 1e-4, 0.5, 0.0, 0.0).ok
    assert not ParityCheck(1, 0.0, 0.0, 1e-4, 0.5, 0.0, 0.0, finite=False).ok


def test_export_rejects_old_opsets_and_portrait_or_non_16x9_sizes() -> None:
    from neo.cli.export import parse_export_size

    with pytest.raises(ValueError, match="opset >= 16"):
        export_onnx(nn.Identity(), "x.onnx", SIZE, opset=13)
    assert parse_export_size("1920x1080") == (1080, 1920) == parse_export_size("1080x1920")
    assert parse_export_size("360p") == SIZE
    with pytest.raises(ValueError, match="not 16:9"):
        parse_export_size("640x480")
