"""neo-data: generate a synthetic 16:9 dataset, verify a COCO dataset, download COCO 2017.

examples:
  neo-data synth data/synthetic                 # the demo dataset (400 train / 80 val, 640x360)
  neo-data verify data/coco                     # counts per split and per class; exit 1 on errors
  neo-data verify images/ --annotations my.json # one annotation file against its image folder
  neo-data download coco --dir data/coco        # COCO 2017 (annotations, val, train), checksummed
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from neo.cli.output import USER_ERRORS, print_user_error, setup_console
from neo.config_problems import render
from neo.console import stdout_console


def _synth(args: argparse.Namespace, console: Console) -> int:
    from neo.data.synth import generate_synthetic_coco

    files = generate_synthetic_coco(args.dir, num_train=args.train, num_val=args.val, size=args.size,
                                    num_classes=args.classes, seed=args.seed, max_objects=args.max_objects)
    console.print(f"wrote synthetic dataset to {Path(args.dir).resolve()}: " + ", ".join(str(p) for p in files.values()),
                  markup=False)
    return 0


def _verify(args: argparse.Namespace, console: Console) -> int:
    from neo.data.verify import find_splits, verify_coco

    pairs = [(Path(args.annotations), Path(args.images or args.dir))] if args.annotations else find_splits(args.dir)
    if not pairs:
        return print_user_error("neo-data verify", render(args.dir, "holds no annotations/instances_*.json",
                                                          "pass the dataset root, or --annotations FILE --images DIR"))
    table = Table(title=f"neo-data verify {escape(args.dir)}", title_justify="left")
    # short headers that keep their width: an 80-column terminal shows them whole
    for col in ("split", "images", "boxes", "classes", "negatives", "crowd", "errors", "warnings"):
        table.add_column(col, justify="left" if col == "split" else "right", min_width=len(col),
                         no_wrap=col != "split", overflow="fold")
    failed = False
    reports = [verify_coco(ann, img, decode=not args.no_decode) for ann, img in pairs]
    for r in reports:
        failed |= not r.ok
        table.add_row(escape(_split(r)), str(r.images), str(r.annotations), str(r.categories), str(r.negatives),
                      str(r.crowd), f"[red]{len(r.errors)}[/red]" if r.errors else "0", str(len(r.warnings)))
    console.print(table)
    for r in reports:
        if r.per_class:
            console.print(_class_table(r))
    for r in reports:
        for kind, n in sorted(r.problems.items()):
            console.print(f"  {escape(r.annotation_file.name)}: {escape(kind)}: {n}", highlight=False)
        for msg in r.errors[: args.show]:
            console.print(f"  [red]error[/red] {escape(msg)}", highlight=False)
        for msg in r.warnings[: args.show]:
            console.print(f"  [yellow]warning[/yellow] {escape(msg)}", highlight=False)
    console.print("[red]FAILED[/red]" if failed else "[green]OK[/green]")
    return 1 if failed else 0


def _split(report) -> str:
    return report.annotation_file.stem.removeprefix("instances_")


def _class_table(report) -> Table:
    """Images and instances per class of one split (crowd boxes excluded), most instances first."""
    table = Table(title=f"{_split(report)}: per class", title_justify="left")
    table.add_column("class", overflow="fold")
    table.add_column("images", justify="right", min_width=6, no_wrap=True)
    table.add_column("instances", justify="right", min_width=9, no_wrap=True)
    for name, (images, instances) in report.per_class.items():
        style = "yellow" if instances == 0 else ""
        table.add_row(escape(name), str(images), str(instances), style=style)
    return table


def _download(args: argparse.Namespace, console: Console) -> int:
    from neo.data.download import COCO_BASE_URL, DownloadError, download_coco

    root = Path(args.dir) if args.dir else Path("data") / "coco"
    try:
        download_coco(root, parts=tuple(args.parts), base_url=args.mirror or COCO_BASE_URL,
                      keep_zips=not args.delete_zips, checksums=not args.no_checksum)
    except DownloadError as err:
        return print_user_error("neo-data download", err)
    console.print(f"COCO 2017 ready under {root.resolve()} (conf/data/coco.yaml reads ${{paths.data_dir}}/coco)",
                  markup=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    setup_console()
    handler = {"synth": _synth, "verify": _verify, "download": _download}[args.command]
    try:
        return handler(args, stdout_console())
    except USER_ERRORS as exc:  # a bad --size, an unreadable annotation file: one paragraph
        return print_user_error(f"neo-data {args.command}", exc)


if __name__ == "__main__":
    sys.exit(main())
