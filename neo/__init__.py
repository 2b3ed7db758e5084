"""neo: RT-DETR object detection for 16:9 imagery with Lightning, Hydra and S3-compatible buckets."""

__version__ = "0.1.0"
