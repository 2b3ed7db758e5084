"""`neo-data download coco` against a file:// mirror of tiny zips: resume, checks, unpacked layout."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from neo.cli.data import main as neo_data
from neo.data.coco import CocoDetection
from neo.data.download import COCO_2017, Archive, DownloadError, download_coco


def _mirror(tmp_path: Path, write_coco) -> tuple[Path, dict[str, Archive]]:
    """Tiny COCO-2017-shaped mirror: zips/val2017.zip and annotations/annotations_trainval2017.zip."""
    src = tmp_path / "src"
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 64, "height": 36} for i in (1, 2)]
    anns = [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [4, 4, 20, 10], "iscrowd": 0}]
    write_coco(src, images, anns, split="val2017")
    (src / "annotations/instances_train.json").unlink(missing_ok=True)
    mirror = tmp_path / "mirror"
    (mirror / "zips").mkdir(parents=True)
    (mirror / "annotations").mkdir()
    with zipfile.ZipFile(mirror / "zips/val2017.zip", "w") as z:
        for p in sorted((src / "val2017").iterdir()):
            z.write(p, f"val2017/{p.name}")
    with zipfile.ZipFile(mirror / "annotations/annotations_trainval2017.zip", "w") as z:
        z.write(src / "annotations/instances_val2017.json", "annotations/instances_val2017.json")
    table = {}
    for name in ("val", "annotations"):
        real = COCO_2017[name]
        data = (mirror / real.url_path).read_bytes()
        table[name] = Archive(real.name, real.url_path, len(data), hashlib.md5(data).hexdigest(), real.produces)
    return mirror, table


def test_download_resumes_checks_and_unpacks(tmp_path, coco_writer):
    mirror, table = _mirror(tmp_path, coco_writer)
    root = tmp_path / "coco"
    full = (mirror / "zips/val2017.zip").read_bytes()
    (root / "zips").mkdir(parents=True)
    (root / "zips/val2017.zip.part").write_bytes(full[: len(full) // 2])  # an interrupted download
    download_coco(root, parts=("annotations", "val"), base_url=mirror.as_uri(), archives=table)
    assert (root / "zips/val2017.zip").read_bytes() == full and not (root / "zips/val2017.zip.part").exists()
    ds = CocoDetection(root / "val2017", root / "annotations/instances_val2017.json", size="640x360")
    assert len(ds) == 2 and ds.label_to_category_id == [3, 7, 12]
    # re-running is a no-op (zips present, unpack markers set)
    download_coco(root, parts=("annotations", "val"), base_url=mirror.as_uri(), archives=table)


def test_download_rejects_wrong_size_and_md5(tmp_path, coco_writer):
    mirror, table = _mirror(tmp_path, coco_writer)
    val = table["val"]
    bad_md5 = {"val": Archive(val.name, val.url_path, val.size, "0" * 32, val.produces)}
    with pytest.raises(DownloadError, match="md5"):
        download_coco(tmp_path / "c1", parts=("val",), base_url=mirror.as_uri(), archives=bad_md5)
    assert not (tmp_path / "c1/zips/val2017.zip.part").exists()  # a corrupt partial is not resumed
    with pytest.raises(DownloadError, match="expected 815585330"):  # the real COCO size: wrong mirror
        download_coco(tmp_path / "c2", parts=("val",), base_url=mirror.as_uri())
    with pytest.raises(ValueError, match="unknown COCO part"):
        download_coco(tmp_path / "c3", parts=("test",))


def test_download_cli_with_mirror(tmp_path, coco_writer):
    mirror, _ = _mirror(tmp_path, coco_writer)
    root = tmp_path / "data/coco"
    assert neo_data(["download", "coco", "--dir", str(root), "--parts", "annotations", "val",
                     "--mirror", mirror.as_uri(), "--no-checksum"]) == 0
    assert sorted(p.name for p in (root / "val2017").iterdir()) == ["000000000001.jpg", "000000000002.jpg"]
    assert neo_data(["download", "coco", "--dir", str(tmp_path / "x"), "--parts", "val", "--mirror", mirror.as_uri()]) == 1


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range GET support (http.server has none); logs every Range header."""

    ranges: list[str] = []

    def send_head(self):
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file():
            return super().send_head()
        type(self).ranges.append(rng)
        data = path.read_bytes()
        start, _, end = rng.removeprefix("bytes=").partition("-")
        start, end = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return io.BytesIO(data[start : end + 1])

    def log_message(self, *args):
        pass


def test_download_over_http_resumes_with_range_requests(tmp_path, coco_writer):
    mirror, table = _mirror(tmp_path, coco_writer)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_RangeHandler, directory=str(mirror)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        root = tmp_path / "coco"
        full = (mirror / "zips/val2017.zip").read_bytes()
        (root / "zips").mkdir(parents=True)
        (root / "zips/val2017.zip.part").write_bytes(full[:100])
        _RangeHandler.ranges = []
        download_coco(root, parts=("val",), base_url=f"http://127.0.0.1:{server.server_port}", archives=table)
        assert (root / "zips/val2017.zip").read_bytes() == full
        assert _RangeHandler.ranges and _RangeHandler.ranges[0].startswith("bytes=100-")  # resumed, not restarted
        assert (root / "val2017/000000000001.jpg").is_file()
    finally:
        server.shutdown()
        server.server_close()
