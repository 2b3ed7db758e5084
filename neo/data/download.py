"""Download COCO 2017 (images + annotations): resumable, size/md5-checked, unpacked for conf/data/coco.yaml.

Resulting layout under `root`: train2017/, val2017/, annotations/instances_{train,val}2017.json.
Any fsspec URL works as a mirror (`file://`, `http(s)://`, `s3://`...); resuming seeks past the bytes
already in `<name>.part`, which fsspec turns into an HTTP Range request.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import fsspec
from rich.progress import Progress

from neo.config_problems import UserError

COCO_BASE_URL = "http://images.cocodataset.org"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """One downloadable zip: path under the base URL, expected size/md5 (None: unknown), folder it yields."""

    name: str
    url_path: str
    size: int | None
    md5: str | None
    produces: str


COCO_2017 = {
    "train": Archive("train2017.zip", "zips/train2017.zip", None, "cced6f7f71b7629ddf16f17bbcfab6b2", "train2017"),
    "val": Archive("val2017.zip", "zips/val2017.zip", 815585330, "442b8da7639aecaf257c1dceb8ba8c80", "val2017"),
    "annotations": Archive("annotations_trainval2017.zip", "annotations/annotations_trainval2017.zip", 252907541,
                           "f4bbac642086de4f52a3fdda2de5fa2c", "annotations"),
}


class DownloadError(UserError, RuntimeError):
    """A download failed its size or checksum check."""


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, target: Path, size: int | None, md5: str | None, progress: Progress | None = None) -> Path:
    """Download `url` to `target`, resuming from `target.part`; check size and md5; atomic rename."""
    if target.is_file() and (size is None or target.stat().st_size == size):
        return target
    fs, path = fsspec.core.url_to_fs(url)
    remote_size = fs.size(path)
    if size is not None and remote_size is not None and remote_size != size:
        raise DownloadError(f"{url} is {remote_size} bytes, expected {size}: wrong mirror or file changed.")
    total = size or remote_size
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    done = part.stat().st_size if part.is_file() else 0
    if total is not None and done > total:
        part.unlink()
        done = 0
    task = progress.add_task(target.name, total=total, completed=done) if progress else None
    with fs.open(path, "rb", block_size=8 * CHUNK) as src, open(part, "ab") as dst:
        if done:
            src.seek(done)  # resume: fsspec reads from this offset (HTTP Range for http mirrors)
        while chunk := src.read(CHUNK):
            dst.write(chunk)
            if progress:
                progress.advance(task, len(chunk))
    got = part.stat().st_size
    if total is not None and got != total:
        raise DownloadError(f"{target.name}: got {got} bytes, expected {total}; re-run to resume.")
    if md5 is not None and (actual := md5_file(part)) != md5:
        part.unlink()
        raise DownloadError(f"{target.name}: md5 {actual} != expected {md5}; the partial file was removed, re-run.")
    part.replace(target)
    return target


def unpack(archive: Path, root: Path) -> None:
    """Extract a zip into root (marker file makes re-runs skip it)."""
    marker = root / f".{archive.name}.unpacked"
    if marker.is_file():
        return
    with zipfile.ZipFile(archive) as z:
        z.extractall(root)
    marker.touch()


def download_coco(
    root: str | Path,
    parts: tuple[str, ...] = ("annotations", "val", "train"),
    base_url: str = COCO_BASE_URL,
    keep_zips: bool = True,
    checksums: bool = True,
    archives: dict[str, Archive] | None = None,
) -> Path:
    """Fetch and unpack COCO 2017 `parts` into `root`; returns root.

    base_url: mirror root URL (same paths as images.cocodataset.org); checksums=False skips the
    size/md5 checks (for mirrors holding other files); archives: replaces the COCO_2017 table.
    """
    root = Path(root)
    table = archives or COCO_2017
    unknown = set(parts) - set(table)
    if unknown:
        raise ValueError(f"unknown COCO part(s) {sorted(unknown)}; choose from {sorted(table)}.")
    from neo.storage.progress import transfer_progress  # the one byte-transfer bar (on stderr)

    with transfer_progress() as progress:
        for name in parts:
            arc = table[name]
            url = f"{base_url.rstrip('/')}/{arc.url_path}"
            zip_path = fetch(url, root / "zips" / arc.name, arc.size if checksums else None,
                             arc.md5 if checksums else None, progress)
            unpack(zip_path, root)
            if not keep_zips:
                zip_path.unlink()
    return root
