"""D-FINE: fine-grained distribution refinement on top of neo's RT-DETR parts (backbones, query
selection, denoising, matcher, post-processing). Configuration wiring lives in conf/model/dfine_*.yaml.

Names are imported lazily (PEP 562), as in :mod:`neo.models.rtdetr`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neo.lazy import lazy_exports

_EXPORTS = {
    "DFINEHybridEncoder": "encoder",
    "DFINEDecoder": "decoder",
    "DFINEDecoderLayer": "decoder_layer",
    "DFINECriterion": "criterion",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .criterion import DFINECriterion  # noqa: F401
    from .decoder import DFINEDecoder  # noqa: F401
    from .decoder_layer import DFINEDecoderLayer  # noqa: F401
    from .encoder import DFINEHybridEncoder  # noqa: F401

