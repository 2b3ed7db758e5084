"""neo-export: a trained checkpoint -> a deployable model file, checked against PyTorch.

    neo-export onnx CKPT [--size 1920x1080] [--out model.onnx] [--weights ema|raw] [--input-dtype uint8|float32]

ONNX: opset 17, dynamic batch, fixed 16:9 size, RepVGG fused, postprocessing inside. Input "images"
uint8 [batch, 3, H, W] RGB 0..255 (default; or float32 0..1), outputs "labels" int64 [batch, K], "boxes"
float32 [batch, K, 4] xyxy pixels of the input, "scores" float32 [batch, K] (see neo.export.onnx).
After writing, onnxruntime runs the graph on a sample batch (random pixels, or --sample IMAGE
letterboxed) and the max abs differences to PyTorch are printed; the exit code is 1 when they exceed
--atol (scores) or --box-atol (pixels), and when CKPT cannot be used (missing, truncated, not a neo
checkpoint: one paragraph on stderr naming it, as every neo command prints a user error). CKPT: a path, URL or bare file name ($NEO_BUCKET, $NEO_CACHE_DIR).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_export_size(value: str) -> tuple[int, int]:
    """(H, W) of a 16:9 size: '1920x1080' (neo's W x H), '1080p', or the unambiguous '1080x1920' (H x W)."""
    from neo.data.sizes import check_16x9, is_16x9, parse_size

    size = parse_size(value, key="--size")
    if size[0] > size[1] and is_16x9((size[1], size[0])):  # portrait is never valid: read as H x W
        print(f"--size {value}: as W x H that is portrait, so it is read as height {size[1]} x width "
              f"{size[0]} (neo writes sizes W x H: {size[0]}x{size[1]})")
        size = (size[1], size[0])
    return check_16x9(list(size), key="--size")


def _resolve(identifier: str) -> Path:
    """A local file as is; a URL or bare file name through neo.storage (bucket from $NEO_BUCKET)."""
    from neo.storage import StorageSettings, resolve

    local = Path(identifier).expanduser()
    if local.is_file():
        return local
    settings = StorageSettings.from_env()  # NEO_BUCKET / NEO_PREFIX / NEO_CACHE_DIR through the one bucket parser
    return Path(resolve(identifier, storage=settings))


def _sample_batch(args: argparse.Namespace, size: tuple[int, int]):
    """[batch, 3, H, W] in the export dtype: --sample images letterboxed, else deterministic noise."""
    import numpy as np
    import torch

    from neo.export import sample_images

    if not args.sample:
        return sample_images(args.batch, size, args.input_dtype, seed=1)
    import cv2

    from neo.data.transforms import letterbox

    canvases = []
    for file in args.sample:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"--sample {file} is not a readable image")
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        canvases.append(letterbox(rgb, np.zeros((0, 4), np.float32), size)[0])
    images = torch.stack([torch.from_numpy(c).permute(2, 0, 1) for c in canvases])
    return images if args.input_dtype == "uint8" else images.float() / 255.0


def cmd_onnx(args: argparse.Namespace) -> int:
    import json

    import torch

    from neo.checkpoints.load import eval_size_of, load_checkpoint_module
    from neo.export import DeployableDetector, check_parity, export_onnx

    torch.set_num_threads(args.threads)
    path = _resolve(args.checkpoint)
    module = load_checkpoint_module(path, weights=args.weights, key=None, value=args.checkpoint)
    size = parse_export_size(args.size) if args.size else eval_size_of(module)
    out = Path(args.out) if args.out else path.with_name(f"{path.stem}_{size[1]}x{size[0]}.onnx")
    top_k = int(getattr(module.postprocessor, "num_top_queries", 300))
    names = module.hparams.get("class_names") or []
    ids = module.hparams.get("label_to_category_id") or []
    metadata = {"neo.checkpoint": path.name, "neo.weights": module.loaded_weights,
                "neo.class_names": json.dumps(list(names)), "neo.label_to_category_id": json.dumps(list(ids))}
    start = time.perf_counter()
    export_onnx(module.net, out, size, num_top_queries=top_k, opset=args.opset, input_dtype=args.input_dtype,
                metadata=metadata)
    export_s = time.perf_counter() - start
    print(f"exported {path.name} ({module.loaded_weights} weights) -> {out} "
                  f"({out.stat().st_size / 2**20:.1f} MB, opset {args.opset}, {export_s:.1f} s)\n"
                  f"  input  images {args.input_dtype} [batch, 3, {size[0]}, {size[1]}] RGB "
                  f"{'0..255' if args.input_dtype == 'uint8' else '0..1'}\n"
                  f"  output labels int64 [batch, {top_k}], boxes float32 [batch, {top_k}, 4] xyxy px, "
                  f"scores float32 [batch, {top_k}]")
    reference = DeployableDetector(module.net.eval(), top_k)  # un-fused PyTorch model
    check = check_parity(out, reference, _sample_batch(args, size), args.atol, args.box_atol)
    if not check.finite:
        print("PyTorch itself returns NaN/inf scores or boxes on the sample: the checkpoint's weights are broken "
              "(or the input is not what the model was trained on); nothing to compare", file=sys.stderr)
    verdict = "OK" if check.ok else "FAILED"
    print(f"onnxruntime vs PyTorch (batch {check.batch}): max abs diff scores {check.max_score_diff:.2e} "
                  f"(atol {check.score_atol:g}), boxes {check.max_box_diff_px:.2e} px (atol {check.box_atol_px:g}) "
                  f"{verdict}; onnxruntime {check.onnx_s:.2f} s, PyTorch {check.torch_s:.2f} s")
    return 0 if check.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-export", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="format", required=True)
    p = sub.add_parser("onnx", help="ONNX with postprocessing; verified with onnxruntime")
    p.add_argument("checkpoint", help="neo checkpoint: path, URL or bare file name")
    p.add_argument("--size", default=None,
                   help="16:9 input size, W x H ('1920x1080') or a name ('1080p') [the checkpoint's eval size]")
    p.add_argument("--out", default=None, help="output file [<checkpoint stem>_<W>x<H>.onnx beside it]")
    p.add_argument("--weights", default="ema", choices=("ema", "raw"), help="EMA (default) or raw weights")
    p.add_argument("--input-dtype", default="uint8", choices=("uint8", "float32"),
                   help="uint8 RGB 0..255 (default) or float32 RGB 0..1")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 16 for GridSample)")
    p.add_argument("--batch", type=int, default=2, help="check batch size (the graph is traced at 1)")
    p.add_argument("--sample", nargs="*", default=None, help="images for the check (default: random pixels)")
    p.add_argument("--atol", type=float, default=1e-4, help="max allowed score difference")
    p.add_argument("--box-atol", type=float, default=0.5, help="max allowed box difference, pixels")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser


def main(argv: list[str] | None = None) -> int:
    from neo.cli.output import USER_ERRORS, print_user_error, setup_console

    args = build_parser().parse_args(argv)
    setup_console()
    try:
        return cmd_onnx(args)
    except USER_ERRORS as exc:  # CheckpointError, ResolveError, a bad --size: one paragraph
        return print_user_error("neo-export", exc)


if __name__ == "__main__":
    sys.exit(main())
