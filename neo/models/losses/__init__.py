"""Losses shared by the detectors in neo.models (RT-DETR, D-FINE); imports no detector."""

from neo.models.losses.classification import (
    CLASSIFICATION_LOSSES,
    check_classification,
    classification_loss,
    focal,
    matchability_aware_loss,
    varifocal,
)

__all__ = [
    "CLASSIFICATION_LOSSES",
    "check_classification",
    "classification_loss",
    "focal",
    "matchability_aware_loss",
    "varifocal",
]
