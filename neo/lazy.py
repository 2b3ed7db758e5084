"""Lazy package exports (PEP 562): a package's public names import their module on first use, so that
importing one light name does not pay for the heavy ones (timm, Hydra, Lightning)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module-level ``__getattr__`` of `package` (``__getattr__ = lazy_exports(__name__, _EXPORTS)``).

    exports: public name -> submodule of `package` that defines it. The first access to a name imports
    ``<package>.<exports[name]>`` and stores the value in the package, so later accesses skip ``__getattr__``.
    Any other name raises AttributeError naming the package.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
