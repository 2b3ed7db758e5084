"""neo-data: generate a synthetic 16:9 dataset, verify a COCO dataset, download COCO 2017."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _synth(args: argparse.Namespace, console: Console) -> int:
    from neo.data.synth import generate_synthetic_coco

    files = generate_synthetic_coco(args.dir, num_train=args.train, num_val=args.val, size=args.size,
                                    num_classes=args.classes, seed=args.seed, max_objects=args.max_objects)
    console.print(f"wrote synthetic dataset to {Path(args.dir).resolve()}: " + ", ".join(str(p) for p in files.values()))
    return 0


def _verify(args: argparse.Namespace, console: Console) -> int:
    from neo.data.verify import find_splits, verify_coco

    pairs = [(Path(args.annotations), Path(args.images or args.dir))] if args.annotations else find_splits(args.dir)
    if not pairs:
        console.print(f"[red]no annotations/instances_*.json under {args.dir}[/red]; pass --annotations FILE --images DIR.")
        return 2
    table = Table(title=f"neo-data verify {args.dir}")
    for col in ("split", "images", "annotations", "categories", "negatives", "crowd", "errors", "warnings"):
        table.add_column(col, justify="left" if col == "split" else "right")
    failed = False
    reports = [verify_coco(ann, img, decode=not args.no_decode) for ann, img in pairs]
    for r in reports:
        failed |= not r.ok
        table.add_row(r.annotation_file.stem.removeprefix("instances_"), str(r.images), str(r.annotations), str(r.categories), str(r.negatives),
                      str(r.crowd), f"[red]{len(r.errors)}[/red]" if r.errors else "0", str(len(r.warnings)))
    console.print(table)
    for r in reports:
        for kind, n in sorted(r.problems.items()):
            console.print(f"  {r.annotation_file.name}: {kind}: {n}")
        for msg in r.errors[: args.show]:
            console.print(f"  [red]error[/red] {msg}", highlight=False)
        for msg in r.warnings[: args.show]:
            console.print(f"  [yellow]warning[/yellow] {msg}", highlight=False)
    console.print("[red]FAILED[/red]" if failed else "[green]OK[/green]")
    return 1 if failed else 0


def _download(args: argparse.Namespace, console: Console) -> int:
    from neo.data.download import COCO_BASE_URL, DownloadError, download_coco

    root = Path(args.dir) if args.dir else Path("data") / "coco"
    try:
        download_coco(root, parts=tuple(args.parts), base_url=args.mirror or COCO_BASE_URL,
                      keep_zips=not args.delete_zips, checksums=not args.no_checksum)
    except DownloadError as err:
        console.print(f"[red]{err}[/red]")
        return 1
    console.print(f"COCO 2017 ready under {root.resolve()} (conf/data/coco.yaml reads ${{paths.data_dir}}/coco)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("synth", help="write a synthetic 16:9 COCO dataset (deterministic for --seed)")
    p.add_argument("dir", help="output folder (train/, val/, annotations/)")
    p.add_argument("--train", type=int, default=400, help="number of train images")
    p.add_argument("--val", type=int, default=80, help="number of val images")
    p.add_argument("--size", default="640x360", help="16:9 image size: 640x360, 720p, ...")
    p.add_argument("--classes", type=int, default=5, help="number of shape classes (1-7)")
    p.add_argument("--max-objects", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("verify", help="check a COCO dataset; non-zero exit on errors")
    p.add_argument("dir", help="dataset root with annotations/instances_*.json (or the image folder with --annotations)")
    p.add_argument("--annotations", help="one annotation JSON to check against DIR (or --images)")
    p.add_argument("--images", help="image folder for --annotations")
    p.add_argument("--no-decode", action="store_true", help="only check image files exist (fast)")
    p.add_argument("--show", type=int, default=20, help="messages to print per split")
    p = sub.add_parser("download", help="download a dataset (coco = COCO 2017)")
    p.add_argument("dataset", choices=["coco"])
    p.add_argument("--dir", help="target folder (default ./data/coco; match paths.data_dir/coco)")
    p.add_argument("--parts", nargs="+", default=["annotations", "val", "train"], choices=["annotations", "val", "train"])
    p.add_argument("--mirror", help="base URL of a mirror with the same paths (http(s)://, file://, s3://...)")
    p.add_argument("--no-checksum", action="store_true", help="skip size/md5 checks (mirrors with other files)")
    p.add_argument("--delete-zips", action="store_true", help="delete the zips after unpacking")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    handler = {"synth": _synth, "verify": _verify, "download": _download}[args.command]
    return handler(args, console)


if __name__ == "__main__":
    sys.exit(main())
