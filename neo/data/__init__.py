"""16:9 COCO data pipeline: sizes, dataset, transforms, multi-scale sampler, collate, DataModule, synth.

Names load lazily, so `from neo.data.sizes import parse_size` (used by models) pulls in neither
Lightning nor cv2.
"""

from importlib import import_module

_EXPORTS = {
    "CocoDetection": "coco", "CorruptImageError": "coco", "DatasetError": "coco", "collate_detection": "collate",
    "NeoDataModule": "datamodule", "EpochShuffleSampler": "sampler", "MultiScaleBatchSampler": "sampler",
    "check_16x9": "sizes", "check_sizes": "sizes", "ladder": "sizes", "nearest_16x9": "sizes",
    "parse_size": "sizes", "DetectionTransform": "transforms", "letterbox": "transforms",
    "letterbox_geometry": "transforms", "unletterbox_boxes": "transforms",
    "generate_synthetic_coco": "synth", "verify_coco": "verify", "download_coco": "download",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"neo.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'neo.data' has no attribute {name!r}")
