"""ONNX export of an RT-DETR with its postprocessing, and the onnxruntime-vs-PyTorch parity check.

The exported graph (opset 17 by default; GridSample needs >= 16):
    input  "images": uint8 [batch, 3, H, W], RGB, 0..255 (or float32 0..1 with input_dtype="float32"),
                     H x W fixed at export (one 16:9 size), batch dynamic. Letterbox your frames into
                     H x W first (neo.data.transforms.letterbox) and map boxes back with its parameters.
    outputs "labels": int64 [batch, K]  contiguous class labels 0..C-1
            "boxes":  float32 [batch, K, 4] xyxy in pixels of the H x W input
            "scores": float32 [batch, K] sigmoid scores, sorted descending
K = min(num_top_queries, queries x classes): the official top-k over all query x class scores, no NMS
and no threshold (filter by score downstream). Normalisation (/255, optional mean/std) is inside.
RepVGG blocks are fused (`RTDETR.deploy()`) before tracing. Export uses the TorchScript tracer
(`dynamo=False`): it handles grid_sample and top-k at a fixed size with a dynamic batch.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.ops import box_convert

INPUT_DTYPES = {"uint8": torch.uint8, "float32": torch.float32}
OUTPUT_NAMES = ("labels", "boxes", "scores")


class DeployableDetector(nn.Module):
    """An RTDETR plus top-k postprocessing in input pixels: the module that gets exported.

    forward(images: uint8 [B, 3, H, W] (0..255) or float [B, 3, H, W] (0..1)) ->
        labels int64 [B, K], boxes float32 [B, K, 4] xyxy pixels of the input, scores float32 [B, K].
    """

    def __init__(self, net: nn.Module, num_top_queries: int = 300) -> None:
        super().__init__()
        self.net = net
        self.num_top_queries = num_top_queries

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.net(images)
        logits, boxes = out["pred_logits"].float(), out["pred_boxes"].float()
        _, q, c = logits.shape
        h, w = images.shape[-2:]
        scale = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        boxes = box_convert(boxes, "cxcywh", "xyxy") * scale
        scores, index = logits.sigmoid().flatten(1).topk(min(self.num_top_queries, q * c), dim=1)
        labels = index % c
        boxes = boxes.gather(1, (index // c)[..., None].expand(-1, -1, 4))
        return labels, boxes, scores


@dataclass
class ParityCheck:
    """onnxruntime vs PyTorch on the same batch.

    max_score_diff: max |score| difference, position by position (both sorted descending).
    max_box_diff_px: max |box coordinate| difference in pixels, each ONNX detection against the PyTorch
        detection of the same label whose score is within ``score_atol`` (top-k order may swap near-ties).
    """

    batch: int
    max_score_diff: float
    max_box_diff_px: float
    score_atol: float
    box_atol_px: float
    onnx_s: float
    torch_s: float
    finite: bool = True  # False: PyTorch itself gave NaN/inf (broken weights), nothing to compare

    @property
    def ok(self) -> bool:
        return self.finite and self.max_score_diff <= self.score_atol and self.max_box_diff_px <= self.box_atol_px


def export_onnx(
    net: nn.Module,
    path: str | Path,
    size: tuple[int, int],
    num_top_queries: int = 300,
    opset: int = 17,
    input_dtype: str = "uint8",
    metadata: dict[str, str] | None = None,
) -> DeployableDetector:
    """Fuse a copy of ``net``, trace it with postprocessing at ``size`` = (H, W), write ``path``.

    Returns the fused, exported module (eval mode) for further checks; ``net`` itself is unchanged.
    Raises ValueError for opset < 16 or an unknown input dtype.
    """
    if opset < 16:
        raise ValueError(f"opset={opset}: GridSample (deformable attention) needs opset >= 16; use 17")
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input_dtype={input_dtype!r} is unknown: use one of {sorted(INPUT_DTYPES)}")
    fused = copy.deepcopy(net).cpu().float().eval()
    if hasattr(fused, "deploy"):
        fused.deploy()  # RepVGG 3x3 + 1x1 branches -> one conv
    model = DeployableDetector(fused, num_top_queries).eval()
    sample = sample_images(1, size, input_dtype, seed=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {name: {0: "batch"} for name in ("images", *OUTPUT_NAMES)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings: shapes are constants at a fixed size, by design
        torch.onnx.export(model, (sample,), str(path), input_names=["images"], output_names=list(OUTPUT_NAMES),
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)
    _finish(path, size, input_dtype, metadata or {})
    return model


def _finish(path: Path, size: tuple[int, int], input_dtype: str, metadata: dict[str, str]) -> None:
    """Validate the graph with onnx.checker and store metadata (input layout, size, class names ...)."""
    import onnx

    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    scale = "0..255" if input_dtype == "uint8" else "0..1"
    props = {"neo.input": f"images {input_dtype} [batch, 3, {size[0]}, {size[1]}] RGB {scale}",
             "neo.outputs": "labels int64 [batch, K]; boxes float32 [batch, K, 4] xyxy pixels; scores float32 [batch, K]",
             "neo.size_hw": json.dumps(list(size)), **metadata}
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


def sample_images(batch: int, size: tuple[int, int], input_dtype: str = "uint8", seed: int = 0) -> torch.Tensor:
    """Deterministic random images [batch, 3, H, W] in the export's input dtype (uint8 0..255 / float 0..1)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, *size), generator=g, dtype=torch.uint8)
    return images if input_dtype == "uint8" else images.float() / 255.0


def run_onnx(path: str | Path, images: torch.Tensor, threads: int = 1) -> tuple[list[np.ndarray], float]:
    """Run the exported graph on ``images`` with onnxruntime (CPU). Returns ([labels, boxes, scores], seconds)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    start = time.perf_counter()
    outputs = session.run(list(OUTPUT_NAMES), {"images": images.numpy()})
    return outputs, time.perf_counter() - start


def compare_detections(reference: list[np.ndarray], exported: list[np.ndarray], score_atol: float) -> tuple[float, float]:
    """(max score diff, max box diff in pixels) between two (labels, boxes, scores) results, robust to
    near-tied detections swapping places: each exported detection is compared with the reference
    detections of the same image and label whose score is within ``score_atol`` (inf if there is none)."""
    ref_labels, ref_boxes, ref_scores = reference
    labels, boxes, scores = exported
    score_diff = float(np.abs(ref_scores - scores).max(initial=0.0))
    box_diff = 0.0
    for b in range(labels.shape[0]):
        same = (labels[b][:, None] == ref_labels[b][None, :]) & (
            np.abs(scores[b][:, None] - ref_scores[b][None, :]) <= score_atol)  # [K, K]
        dist = np.abs(boxes[b][:, None, :] - ref_boxes[b][None, :, :]).max(-1)  # [K, K]
        best = np.where(same, dist, np.inf).min(1, initial=np.inf)
        box_diff = max(box_diff, float(best.max(initial=0.0)))
    return score_diff, box_diff


def check_parity(
    path: str | Path,
    reference: nn.Module,
    images: torch.Tensor,
    score_atol: float = 1e-4,
    box_atol_px: float = 0.5,
) -> ParityCheck:
    """Run the ONNX graph and ``reference`` (a DeployableDetector, e.g. of the un-fused net) on ``images``."""
    start = time.perf_counter()
    with torch.no_grad():
        expected = [t.numpy() for t in reference.eval()(images)]
    torch_s = time.perf_counter() - start
    got, onnx_s = run_onnx(path, images)
    score_diff, box_diff = compare_detections(expected, got, score_atol)
    finite = bool(np.isfinite(expected[1]).all() and np.isfinite(expected[2]).all())
    return ParityCheck(int(images.shape[0]), score_diff, box_diff, score_atol, box_atol_px, onnx_s, torch_s, finite)
