"""D-FINE: fine-grained distribution refinement on top of neo's RT-DETR parts (backbones, query
selection, denoising, matcher, post-processing). Configuration wiring lives in conf/model/dfine_*.yaml.

Names are imported lazily (PEP 562), as in :mod:`neo.models.rtdetr`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DFINEHybridEncoder": "encoder",
    "DFINEDecoder": "decoder",
    "DFINEDecoderLayer": "decoder_layer",
    "DFINECriterion": "criterion",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .criterion import DFINECriterion  # noqa: F401
    from .decoder import DFINEDecoder  # noqa: F401
    from .decoder_layer import DFINEDecoderLayer  # noqa: F401
    from .encoder import DFINEHybridEncoder  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
