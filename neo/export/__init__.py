"""Deployment exports of trained detectors (ONNX with postprocessing); no Lightning or storage imports."""

from neo.export.onnx import (
    DeployableDetector,
    ParityCheck,
    check_parity,
    export_onnx,
    run_onnx,
    sample_images,
)

__all__ = ["DeployableDetector", "ParityCheck", "check_parity", "export_onnx", "run_onnx", "sample_images"]
