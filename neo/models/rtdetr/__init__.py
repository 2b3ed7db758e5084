"""RT-DETR (v1 with the v2 decoder options) in plain PyTorch: backbones, hybrid encoder, decoder,
loss, post-processing and presets. Configuration wiring lives in conf/model/*.yaml.

Names are imported lazily (PEP 562) so that `from neo.models.rtdetr import SetCriterion` does not
pay for timm or Hydra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "RTDETR": "rtdetr",
    "PResNet": "presnet",
    "TimmBackbone": "timm_backbone",
    "HybridEncoder": "hybrid_encoder",
    "RTDETRDecoder": "decoder",
    "MSDeformableAttention": "deformable_attention",
    "HungarianMatcher": "matcher",
    "SetCriterion": "criterion",
    "PostProcessor": "postprocess",
    "sincos_2d_embedding": "position",
    "CONVERTIBLE_PRESETS": "presets",
    "PRESETS": "presets",
    "build_preset": "presets",
    "load_preset_config": "presets",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .criterion import SetCriterion  # noqa: F401
    from .decoder import RTDETRDecoder  # noqa: F401
    from .deformable_attention import MSDeformableAttention  # noqa: F401
    from .hybrid_encoder import HybridEncoder  # noqa: F401
    from .matcher import HungarianMatcher  # noqa: F401
    from .position import sincos_2d_embedding  # noqa: F401
    from .postprocess import PostProcessor  # noqa: F401
    from .presets import CONVERTIBLE_PRESETS, PRESETS, build_preset, load_preset_config  # noqa: F401
    from .presnet import PResNet  # noqa: F401
    from .rtdetr import RTDETR  # noqa: F401
    from .timm_backbone import TimmBackbone  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
