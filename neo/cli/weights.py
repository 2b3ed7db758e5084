"""neo-weights: list, pull, upload (registry -> bucket), push a file, verify cache and bucket hashes.

    neo-weights list [--framework all] [--format table|plain|json]
    neo-weights pull timm/convnext_tiny
    neo-weights upload --framework ultralytics|timm|rtdetr|all [--dry-run]
    neo-weights push runs/x/checkpoints/last.ckpt [--as checkpoints/x-last.ckpt] [--force]
    neo-weights verify [--verbose]
    neo-weights import rtdetr/rtdetr_r50vd_6x_coco [--out rtdetr_r50.ckpt] [--preset auto] [--state ema|model]
                       [--variant auto|default|dsp] [--no-fold-frozen-norm]
Bucket and cache: --bucket/--prefix/--cache-dir, else $NEO_BUCKET / $NEO_CACHE_DIR, else ./data/bucket and
./data/cache (the defaults of conf/storage/local.yaml). The bucket is a URL (r2://name) or a folder; a bare
name needs --storage r2|b2|s3. Credentials come from the environment only. Errors: one paragraph, exit 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from neo.storage.errors import ResolveError, StorageAccessError, StorageConfigError, classify
from neo.storage.progress import RichCallback, transfer_progress
from neo.storage.push import push_file, remote_state
from neo.storage.registry import Registry
from neo.storage.resolver import check_url, is_url, pretrained_cache_path, resolve
from neo.storage.settings import PROVIDERS, StorageSettings, bucket_from_env, parse_bucket
from neo.storage.verification import PROBLEMS, verify

console = Console()
DEFAULT_BUCKET = "data/bucket"


def _settings(args: argparse.Namespace) -> StorageSettings:
    """Settings from the flags, then NEO_BUCKET / NEO_PREFIX / NEO_CACHE_DIR, parsed by the one bucket parser."""
    if args.bucket is not None:
        raw, source = args.bucket, "--bucket"
    else:
        raw, source = bucket_from_env(DEFAULT_BUCKET), "NEO_BUCKET" if "NEO_BUCKET" in os.environ else "--bucket"
    bucket = parse_bucket(raw, args.storage, source)
    return StorageSettings(bucket=bucket, provider=args.storage, prefix=args.prefix, cache_dir=args.cache_dir,
                           offline=args.offline)


def check_identifier(name: str) -> None:
    """Refuse a URL with credentials (or an invalid bucket) before its name is shown anywhere."""
    if is_url(name):
        check_url(name)


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MB"


def _list_rows(args, settings: StorageSettings, registry: Registry) -> list[dict]:
    rows = []
    for name in registry.names(args.framework):
        entry = registry.get(name)
        cached = pretrained_cache_path(entry, settings)
        size = cached.stat().st_size if cached.is_file() else entry.size
        in_bucket = None
        if settings.bucket and not settings.is_offline:
            try:
                state = remote_state(settings, settings.pretrained_key(entry.framework, entry.file))
                in_bucket = "yes" if state.size is not None else "no"
                size = size if size is not None else state.size
            except Exception as exc:  # noqa: BLE001 - one unreachable bucket does not hide the registry
                in_bucket = f"? ({classify(exc)})"
        rows.append({"name": name, "framework": entry.framework, "file": entry.file, "size": size,
                     "cached": cached.is_file(), "in_bucket": in_bucket})
    return rows


def cmd_list(args, settings: StorageSettings, registry: Registry) -> int:
    """Table on a terminal; elsewhere one tab-separated line per weight (never wrapped); or JSON."""
    rows = _list_rows(args, settings, registry)
    fmt = args.format or ("table" if console.is_terminal else "plain")
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if fmt == "plain":
        print("\t".join(("name", "framework", "file", "size", "cached", "in_bucket")))
        for r in rows:
            print("\t".join((r["name"], r["framework"], r["file"], "-" if r["size"] is None else str(r["size"]),
                             "yes" if r["cached"] else "no", r["in_bucket"] or "-")))
        return 0
    table = Table(title=f"Registry ({settings.bucket or 'no bucket'})")
    table.add_column("name", no_wrap=True)
    for col in ("framework", "file", "size", "cached", "in bucket"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["framework"], r["file"], _size(r["size"]), "yes" if r["cached"] else "no",
                      r["in_bucket"] or "-")
    console.print(table)
    return 0


def cmd_pull(args, settings: StorageSettings, registry: Registry) -> int:
    """Resolve each name into the cache; errors are printed after the progress bars, one paragraph each."""
    errors = []
    with transfer_progress() as progress:
        for name in args.names:
            try:
                check_identifier(name)
                path = resolve(name, storage=settings, registry=registry, callback=RichCallback(progress, name))
                progress.console.print(f"[green]{escape(str(name))}[/] -> {escape(str(path))}", highlight=False)
            except (ResolveError, ValueError, OSError) as exc:
                errors.append(str(exc))
    for message in errors:
        print(f"neo-weights pull: {message}", file=sys.stderr)
    if settings.bucket and settings.upload_origin:
        from neo.storage.uploader import shared_uploader

        shared_uploader().drain(settings.drain_timeout_s)
    return 1 if errors else 0


def cmd_upload(args, settings: StorageSettings, registry: Registry) -> int:
    if not settings.bucket:
        console.print("No bucket: pass --bucket or set NEO_BUCKET.", style="red")
        return 1
    frameworks = sorted({registry.get(n).framework for n in registry.names(args.framework)})
    total_failed = 0
    for framework in frameworks:
        counts = {"uploaded": 0, "skipped": 0, "failed": 0}
        for name in registry.names(framework):
            entry = registry.get(name)
            key = settings.pretrained_key(entry.framework, entry.file)
            url = settings.url(key)
            try:
                state = remote_state(settings, key)
                if state.sha256 and (entry.sha256 is None or state.sha256 == entry.sha256):
                    console.print(f"[dim][SKIP][/] {escape(str(name))}: already in bucket ({_size(state.size)}, sha256 "
                                  f"{state.sha256[:12]})", highlight=False)
                    counts["skipped"] += 1
                    continue
                if args.dry_run:
                    console.print(f"[cyan][DRY-RUN][/] {escape(str(name))}: would upload to {escape(str(url))}", highlight=False)
                    counts["uploaded"] += 1
                    continue
                with transfer_progress() as progress:
                    local = resolve(name, storage=replace(settings, upload_origin=False), registry=registry,
                                    callback=RichCallback(progress, f"fetch {name}"))
                    done = push_file(local, key, settings, callback=RichCallback(progress, f"upload {name}"))
                console.print(f"[green][{'UPLOADED' if done.uploaded else 'SKIP'}][/] {escape(str(name))} -> {escape(str(url))} "
                              f"({_size(done.size)})", highlight=False)
                counts["uploaded" if done.uploaded else "skipped"] += 1
            except Exception as exc:  # noqa: BLE001 - one failure does not stop the others
                console.print(f"[FAILED] {name}: {exc}", style="red", highlight=False, markup=False)
                counts["failed"] += 1
        verb = "would upload" if args.dry_run else "uploaded"
        console.print(f"{framework.upper()} SUMMARY: {counts['uploaded']} {verb}, {counts['skipped']} skipped, "
                      f"{counts['failed']} failed", highlight=False)
        total_failed += counts["failed"]
    return 1 if total_failed else 0


def cmd_push(args, settings: StorageSettings, registry: Registry) -> int:
    local = Path(args.file)
    key = args.as_key if args.as_key else settings.checkpoint_key(local.name)
    with transfer_progress() as progress:
        done = push_file(local, key, settings, force=args.force,
                         callback=RichCallback(progress, f"push {local.name}"))
    if done.uploaded:
        print(f"Uploaded {local} -> {done.url} ({_size(done.size)}, sha256 {done.sha256[:12]})")
    else:
        print(f"Already in bucket: {done.url} records the same sha256 ({done.sha256[:12]}); nothing sent. "
              "Use --force to upload anyway.")
    return 0


def cmd_verify(args, settings: StorageSettings, registry: Registry) -> int:
    report = verify(settings, registry, args.framework)
    if not report.checks:
        print(f"Nothing to verify: the cache {settings.cache_dir} holds no file"
              + (" and the bucket none of the registry's weights." if settings.bucket and not settings.is_offline
                 else "."))
        return 0
    for check in report.checks:
        if check.state in PROBLEMS or args.verbose:
            print(f"{check.state.upper():<13} {check.place:<6} {check.name}" + (f": {check.detail}" if check.detail
                                                                                 and check.state != "ok" else ""))
    if report.problems:
        print(f"{len(report.problems)} problem(s). {report.summary()}.")
        return 1
    print(f"All hashes match. {report.summary()}.")
    return 0


def cmd_import(args, settings: StorageSettings, registry: Registry) -> int:
    """Resolve SRC (path, URL, registry name), convert the official checkpoint, print the report."""
    from neo.checkpoints.official import import_official

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
    entry = registry.entries.get(args.src)  # a registry entry states what the tensors cannot show (dsp)
    variant = args.variant if args.variant != "auto" else (entry.extra.get("variant", "default") if entry else None)
    stated_by = "--variant" if args.variant != "auto" else "the registry entry"
    try:
        result = import_official(path, out, preset=None if args.preset == "auto" else args.preset,
                                 prefer=args.state, trust_pickle=args.trust_pickle, origin=args.src,
                                 variant=variant, fold_frozen_norm=args.fold_frozen_norm)
    except ValueError as exc:
        print(f"neo-weights import: {exc}", file=sys.stderr)
        return 1
    finally:
        if settings.bucket and settings.upload_origin:
            from neo.storage.uploader import shared_uploader

            shared_uploader().drain(settings.drain_timeout_s)
    print_import_report(result, args.src, path, verbose=args.verbose, stated_by=stated_by)
    return 0


LAYOUTS = {"v1": "RT-DETR v1 names: encoder.input_proj.<i>.0/.1, decoder.enc_output.0/.1",
           "v2": "RT-DETRv2 names as released: encoder.input_proj.<i>.conv/.norm, decoder.enc_output.proj/.norm, "
                 "640x640 anchors",
           "dfine": "D-FINE names as released: backbone.stem/stages.<i> (timm HGNetv2), "
                    "decoder.decoder.lqe_layers.<i>.reg_conf, 640x640 anchors"}


def print_import_report(result, identifier: str, source: Path, verbose: bool = False,
                        stated_by: str = "--variant") -> None:
    """Plain lines (readable in logs): architecture, variants, what mapped per module, every rename and drop with
    its reason, the normalisation, the file written and the next commands. stated_by: who named the sampling
    variant when it was named (``--variant`` or the registry entry)."""
    arch, report = result.architecture, result.report
    per_module = ", ".join(f"{module} {count}" for module, count in report.mapped_by_module().items())
    family = "D-FINE" if arch.version == "dfine" else f"RT-DETR {arch.version}"
    lines = [
        f"source: {identifier}" + (f" -> {source}" if str(source) != identifier else "") + f" ({report.source})",
        f"architecture: {family}, preset {result.preset}, {arch.num_classes} classes, "
        f"{arch.num_decoder_layers} decoder layers, {result.num_parameters:,} parameters",
        f"layout: {arch.version} ({LAYOUTS.get(arch.version, arch.version)})",
        f"variants: {', '.join(result.variants)}",
        f"sampling: {_sampling_text(result, stated_by)}",
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
        f"  predict:   neo-predict checkpoint={result.output} source=IMAGE  (640x360, COCO names)",
        f"  evaluate:  neo-eval checkpoint={result.output}  (COCO under data/coco; elsewhere: data=coco "
        "data.root=...)",
        f"  export:    neo-export onnx {result.output} --size 1920x1080",
    ]
    print("\n".join(lines))


def _sampling_text(result, stated_by: str) -> str:
    """'discrete (dsp, stated by --variant)', 'bilinear (stated by the registry entry)' or, not stated, bilinear
    with the hint that a dsp file cannot be told from its tensors."""
    if not result.sampling_stated:
        return "bilinear (a dsp file has the same tensors: import one with --variant dsp)"
    return f"{result.sampling} ({'dsp, ' if result.sampling == 'discrete' else ''}stated by {stated_by})"


def build_parser() -> argparse.ArgumentParser:
    from neo.models.rtdetr.presets import CONVERTIBLE_PRESETS

    parser = argparse.ArgumentParser(prog="neo-weights", description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", default=None,
                        help="bucket URL (r2://name, b2://name, s3://name), a folder, or a bare name with --storage "
                             "[$NEO_BUCKET or data/bucket]")
    parser.add_argument("--storage", default=None, choices=PROVIDERS,
                        help="provider of a bare bucket name (like neo-train storage=r2)")
    parser.add_argument("--prefix", default=os.environ.get("NEO_PREFIX", ""), help="key prefix in the bucket")
    parser.add_argument("--cache-dir", default=os.environ.get("NEO_CACHE_DIR", "data/cache"), help="local cache")
    parser.add_argument("--offline", action="store_true", help="cache only (like NEO_OFFLINE=1)")
    parser.add_argument("--registry", default=None, help="registry YAML (default: conf/registry/weights.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="name, framework, size, cached?, in bucket?")
    p.add_argument("--framework", default="all")
    p.add_argument("--format", default=None, choices=("table", "plain", "json"),
                   help="table on a terminal, else plain (tab-separated, one line per weight, never wrapped)")
    p = sub.add_parser("pull", help="resolve names into the cache (cache -> bucket -> origin)")
    p.add_argument("names", nargs="+")
    p = sub.add_parser("upload", help="upload registry weights to the bucket (idempotent)")
    p.add_argument("--framework", default="all", help="ultralytics | timm | rtdetr | all")
    p.add_argument("--dry-run", action="store_true", help="show what would be uploaded; change nothing")
    p = sub.add_parser("push", help="upload a local file (default key checkpoints/<name>)")
    p.add_argument("file")
    p.add_argument("--as", dest="as_key", default=None, help="object key under the prefix")
    p.add_argument("--force", action="store_true",
                   help="upload even if the bucket records the same sha256 (repairs altered bytes)")
    p = sub.add_parser("verify", help="re-hash the cache, check the bucket's sha256 records; fails on anything "
                                      "unverifiable")
    p.add_argument("--framework", default="all")
    p.add_argument("--verbose", action="store_true", help="list every file checked, not only the problems")
    p = sub.add_parser("import", help="convert an official RT-DETR checkpoint (v1/v2) into a neo checkpoint")
    p.add_argument("src", help="path, URL or registry name (e.g. rtdetr/rtdetr_r50vd_6x_coco)")
    p.add_argument("--out", default=None, help="neo checkpoint to write [./<src stem>_neo.ckpt]")
    p.add_argument("--preset", default="auto", help="neo preset to load into: auto (from the keys and shapes) | "
                                                    f"{' | '.join(CONVERTIBLE_PRESETS)}")
    p.add_argument("--state", default="ema", choices=("ema", "model"),
                   help="which weights: ema (ema.module when present, the official choice) or model")
    p.add_argument("--variant", default="auto", choices=("auto", "default", "dsp"),
                   help="what the tensors cannot show: dsp (discrete sampling) or default (bilinear); auto takes the "
                        "registry entry's, else bilinear, and refuses a file named *dsp* (sp1/sp2/sp3 are detected)")
    p.add_argument("--no-fold-frozen-norm", dest="fold_frozen_norm", action="store_false",
                   help="keep the backbone's frozen norms unfolded (conv -> norm as upstream): exact official outputs, "
                        "slower (neo-bench frozen-norm measures it); default: folded into the convs")
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
    except (StorageConfigError, StorageAccessError, FileNotFoundError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"neo-weights {args.command}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
