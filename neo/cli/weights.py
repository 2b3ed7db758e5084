"""neo-weights: list, pull, upload (registry -> bucket), push a file, verify cache and bucket hashes.

    neo-weights list [--framework all]
    neo-weights pull timm/convnext_tiny
    neo-weights upload --framework ultralytics|timm|rtdetr|all [--dry-run]
    neo-weights push runs/x/checkpoints/last.ckpt [--as checkpoints/x-last.ckpt]
    neo-weights verify
    neo-weights import rtdetr/rtdetr_r50vd_6x_coco [--out rtdetr_r50.ckpt] [--preset auto] [--state ema|model]
Bucket and cache: --bucket/--prefix/--cache-dir, else $NEO_BUCKET / $NEO_CACHE_DIR, else ./data/bucket and
./data/cache (the defaults of conf/storage/local.yaml). Credentials come from the environment only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from neo.storage.errors import ResolveError, classify
from neo.storage.progress import RichCallback, transfer_progress
from neo.storage.registry import Registry
from neo.storage.resolver import pretrained_cache_path, resolve
from neo.storage.settings import StorageSettings, join_key
from neo.storage.transfer import (
    SIDECAR,
    cache_entry_ok,
    read_local_sidecar,
    remote_sha256,
    sha256_file,
    upload,
)

console = Console()


def _settings(args: argparse.Namespace, **overrides) -> StorageSettings:
    values = dict(bucket=args.bucket, prefix=args.prefix, cache_dir=args.cache_dir, offline=args.offline)
    values.update(overrides)
    return StorageSettings(**values)


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MB"


def _remote_state(settings: StorageSettings, key: str) -> tuple[int | None, str | None]:
    """(size, sha256) of a bucket object, (None, None) if absent."""
    fs, root = settings.bucket_fs()
    try:
        info = fs.info(f"{root}/{key}")
    except FileNotFoundError:
        return None, None
    return info.get("size"), remote_sha256(fs, f"{root}/{key}")


def cmd_list(args, settings: StorageSettings, registry: Registry) -> int:
    table = Table(title=f"Registry ({settings.bucket or 'no bucket'})")
    for col in ("name", "framework", "file", "size", "cached", "in bucket"):
        table.add_column(col, overflow="fold")
    for name in registry.names(args.framework):
        entry = registry.get(name)
        cached = pretrained_cache_path(entry, settings)
        size = cached.stat().st_size if cached.is_file() else entry.size
        in_bucket = "-"
        if settings.bucket and not settings.is_offline:
            try:
                rsize, _ = _remote_state(settings, settings.pretrained_key(entry.framework, entry.file))
                in_bucket = "yes" if rsize is not None else "no"
                size = size if size is not None else rsize
            except Exception as exc:  # noqa: BLE001
                in_bucket = f"? ({classify(exc)})"
        table.add_row(name, entry.framework, entry.file, _size(size), "yes" if cached.is_file() else "no", in_bucket)
    console.print(table)
    return 0


def cmd_pull(args, settings: StorageSettings, registry: Registry) -> int:
    failed = 0
    with transfer_progress() as progress:
        for name in args.names:
            try:
                path = resolve(name, storage=settings, registry=registry, callback=RichCallback(progress, name))
                progress.console.print(f"[green]{escape(str(name))}[/] -> {escape(str(path))}")
            except (ResolveError, ValueError) as exc:
                progress.console.print(f"[red]{escape(str(exc))}[/]")
                failed += 1
    if settings.bucket and settings.upload_origin:
        from neo.storage.uploader import shared_uploader

        shared_uploader().drain(settings.drain_timeout_s)
    return 1 if failed else 0


def cmd_upload(args, settings: StorageSettings, registry: Registry) -> int:
    if not settings.bucket:
        console.print("[red]No bucket: pass --bucket or set NEO_BUCKET.[/]")
        return 2
    frameworks = sorted({registry.get(n).framework for n in registry.names(args.framework)})
    fs, root = settings.bucket_fs()
    total_failed = 0
    for framework in frameworks:
        counts = {"uploaded": 0, "skipped": 0, "failed": 0}
        for name in registry.names(framework):
            entry = registry.get(name)
            key = settings.pretrained_key(entry.framework, entry.file)
            url = settings.url(key)
            try:
                size, sha = _remote_state(settings, key)
                if size is not None and sha and (entry.sha256 is None or sha == entry.sha256):
                    console.print(f"[dim][SKIP][/] {escape(str(name))}: already in bucket ({_size(size)}, sha256 {sha[:12]})")
                    counts["skipped"] += 1
                    continue
                if args.dry_run:
                    console.print(f"[cyan][DRY-RUN][/] {escape(str(name))}: would upload to {escape(str(url))}")
                    counts["uploaded"] += 1
                    continue
                with transfer_progress() as progress:
                    local = resolve(name, storage=replace(settings, upload_origin=False), registry=registry,
                                    callback=RichCallback(progress, f"fetch {name}"))
                    done = upload(local, fs, f"{root}/{key}", callback=RichCallback(progress, f"upload {name}"))
                console.print(f"[green][{'UPLOADED' if done else 'SKIP'}][/] {escape(str(name))} -> {escape(str(url))} "
                              f"({_size(local.stat().st_size)})")
                counts["uploaded" if done else "skipped"] += 1
            except Exception as exc:  # noqa: BLE001 - one failure does not stop the others
                console.print(f"[red][FAILED][/] {escape(str(name))}: {classify(exc)}: {escape(str(exc))}")
                counts["failed"] += 1
        verb = "would upload" if args.dry_run else "uploaded"
        console.print(f"{framework.upper()} SUMMARY: {counts['uploaded']} {verb}, {counts['skipped']} skipped, "
                      f"{counts['failed']} failed")
        total_failed += counts["failed"]
    return 1 if total_failed else 0


def cmd_push(args, settings: StorageSettings, registry: Registry) -> int:
    local = Path(args.file)
    if not local.is_file():
        console.print(f"[red]{escape(str(local))} is not a file.[/]")
        return 2
    if not settings.bucket:
        console.print("[red]No bucket: pass --bucket or set NEO_BUCKET.[/]")
        return 2
    key = join_key(args.as_key) if args.as_key else settings.checkpoint_key(local.name)
    fs, root = settings.bucket_fs()
    with transfer_progress() as progress:
        done = upload(local, fs, f"{root}/{key}", callback=RichCallback(progress, f"push {local.name}"))
    console.print(f"{'Uploaded' if done else 'Already in bucket:'} {escape(str(local))} -> {escape(settings.url(key))}")
    return 0


def cmd_verify(args, settings: StorageSettings, registry: Registry) -> int:
    table = Table(title="verify")
    for col in ("file", "cache sha256", "bucket sidecar"):
        table.add_column(col, overflow="fold")
    bad = 0
    cache = settings.cache_dir
    sidecars = sorted(cache.rglob(f"*{SIDECAR}")) if cache.is_dir() else []
    by_path = {}
    for side in sidecars:
        path = Path(str(side)[: -len(SIDECAR)])
        if not path.is_file():
            continue
        ok = sha256_file(path) == read_local_sidecar(path)
        by_path[path] = ok
        bad += not ok
    for name in registry.names(args.framework):
        entry = registry.get(name)
        path = pretrained_cache_path(entry, settings)
        cache_state = ("ok" if by_path.pop(path, cache_entry_ok(path, entry.sha256)) else "[red]MISMATCH[/]") \
            if path.is_file() else "not cached"
        bad += "MISMATCH" in cache_state
        remote = "-"
        if settings.bucket and not settings.is_offline:
            try:
                size, sha = _remote_state(settings, settings.pretrained_key(entry.framework, entry.file))
                if size is None:
                    remote = "not in bucket"
                elif sha is None:
                    remote = "[yellow]no sidecar[/]"
                else:
                    local_sha = read_local_sidecar(path) if path.is_file() else None
                    match = (local_sha is None or sha == local_sha) and (entry.sha256 is None or sha == entry.sha256)
                    remote = "ok" if match else "[red]MISMATCH[/]"
                    bad += not match
            except Exception as exc:  # noqa: BLE001
                remote = f"? ({classify(exc)})"
        table.add_row(name, cache_state, remote)
    for path, ok in by_path.items():
        table.add_row(str(path.relative_to(cache)), "ok" if ok else "[red]MISMATCH[/]", "-")
    console.print(table)
    console.print(f"{bad} problem(s)" if bad else "All hashes match.")
    return 1 if bad else 0


def cmd_import(args, settings: StorageSettings, registry: Registry) -> int:
    """Resolve SRC (path, URL, registry name), convert the official checkpoint, print the report."""
    from neo.training.import_official import import_official

    path = Path(args.src).expanduser()
    if not path.is_file():
        with transfer_progress() as progress:
            try:
                path = resolve(args.src, storage=settings, registry=registry,
                               callback=RichCallback(progress, args.src))
            except ResolveError as exc:
                progress.console.print(f"[red]{escape(str(exc))}[/]")
                return 1
    out = Path(args.out) if args.out else Path.cwd() / f"{path.stem}_neo.ckpt"
    try:
        result = import_official(path, out, preset=None if args.preset == "auto" else args.preset,
                                 prefer=args.state, trust_pickle=args.trust_pickle, origin=args.src)
    except ValueError as exc:
        print(f"neo-weights import: {exc}", file=sys.stderr)
        return 1
    finally:
        if settings.bucket and settings.upload_origin:
            from neo.storage.uploader import shared_uploader

            shared_uploader().drain(settings.drain_timeout_s)
    print_import_report(result, args.src, path, verbose=args.verbose)
    return 0


def print_import_report(result, identifier: str, source: Path, verbose: bool = False) -> None:
    """Plain lines (readable in logs): architecture, what mapped per module, every rename and drop with its
    reason, the normalisation, the file written and the next commands."""
    arch, report = result.architecture, result.report
    per_module = ", ".join(f"{module} {count}" for module, count in report.mapped_by_module().items())
    lines = [
        f"source: {identifier}" + (f" -> {source}" if str(source) != identifier else "") + f" ({report.source})",
        f"architecture: RT-DETR {arch.version}, preset {result.preset}, {arch.num_classes} classes, "
        f"{arch.num_decoder_layers} decoder layers, {result.num_parameters:,} parameters",
        f"mapped: {len(report.mapped)} tensors, strict (no missing or unexpected keys): {per_module}",
    ]
    lines += [f"  {key}" for key in report.mapped] if verbose else []
    lines.append(f"renamed: {len(report.renamed)}")
    lines += [f"  {old} -> {new}" for old, new in report.renamed.items()]
    lines.append(f"dropped: {len(report.dropped)}")
    lines += [f"  {key}: {why}" for key, why in report.dropped.items()]
    lines += [
        "input normalisation: images / 255, no mean/std (official); model.net.pixel_mean/pixel_std = null",
        f"wrote {result.output}",
        f"  fine-tune: neo-train model={result.preset} pretrained={result.output} data=...  "
        "(class heads re-initialised when data.num_classes differs)",
        f"  evaluate:  neo-eval checkpoint={result.output} data=coco data.root=...",
        f"  export:    neo-export onnx {result.output} --size 1920x1080",
    ]
    print("\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo-weights", description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", default=os.environ.get("NEO_BUCKET", "data/bucket"),
                        help="bucket URL (r2://name, b2://name, s3://name) or folder [$NEO_BUCKET or data/bucket]")
    parser.add_argument("--prefix", default=os.environ.get("NEO_PREFIX", ""), help="key prefix in the bucket")
    parser.add_argument("--cache-dir", default=os.environ.get("NEO_CACHE_DIR", "data/cache"), help="local cache")
    parser.add_argument("--offline", action="store_true", help="cache only (like NEO_OFFLINE=1)")
    parser.add_argument("--registry", default=None, help="registry YAML (default: conf/registry/weights.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="table: name, framework, size, cached?, in bucket?")
    p.add_argument("--framework", default="all")
    p = sub.add_parser("pull", help="resolve names into the cache (cache -> bucket -> origin)")
    p.add_argument("names", nargs="+")
    p = sub.add_parser("upload", help="upload registry weights to the bucket (idempotent)")
    p.add_argument("--framework", default="all", help="ultralytics | timm | rtdetr | all")
    p.add_argument("--dry-run", action="store_true", help="show what would be uploaded; change nothing")
    p = sub.add_parser("push", help="upload a local file (default key checkpoints/<name>)")
    p.add_argument("file")
    p.add_argument("--as", dest="as_key", default=None, help="object key under the prefix")
    p = sub.add_parser("verify", help="re-hash the cache and compare the bucket's sidecars")
    p.add_argument("--framework", default="all")
    p = sub.add_parser("import", help="convert an official RT-DETR checkpoint (v1/v2) into a neo checkpoint")
    p.add_argument("src", help="path, URL or registry name (e.g. rtdetr/rtdetr_r50vd_6x_coco)")
    p.add_argument("--out", default=None, help="neo checkpoint to write [./<src stem>_neo.ckpt]")
    p.add_argument("--preset", default="auto",
                   help="neo preset to load into: auto (from the keys and shapes) | rtdetr_r18 | rtdetr_r34 | "
                        "rtdetr_r50m | rtdetr_r50 | rtdetr_r101")
    p.add_argument("--state", default="ema", choices=("ema", "model"),
                   help="which weights: ema (ema.module when present, the official choice) or model")
    p.add_argument("--verbose", action="store_true", help="also list every mapped key")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow a full unpickle when a weights-only load refuses the file (trusted files only)")
    return parser


COMMANDS = {"list": cmd_list, "pull": cmd_pull, "upload": cmd_upload, "push": cmd_push, "verify": cmd_verify,
            "import": cmd_import}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = _settings(args)
        registry = Registry.load(args.registry)
        return COMMANDS[args.command](args, settings, registry)
    except (ValueError, KeyError) as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        return 2


if __name__ == "__main__":
    sys.exit(main())
