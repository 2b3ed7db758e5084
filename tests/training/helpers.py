"""Compose test configs in-process (no @hydra.main) and swap in the toy detector when asked.

Kept for the files that import from here; the helpers live in :mod:`tests.support.overrides`.
"""

from tests.support.overrides import TOY_MODEL, compose_train

__all__ = ["TOY_MODEL", "compose_train"]
