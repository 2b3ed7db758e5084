"""neo.storage: r2:// and b2:// protocols, bucket settings, the weight/checkpoint resolver, the registry.

Public API (the checkpoint and training layers use these):
    StorageSettings.from_config(cfg.storage)
    resolve(identifier, *, storage=None, registry=None, refresh=False) -> Path
Checkpoint mirroring while training and finding a run's newest checkpoint are :mod:`neo.checkpoints`'s
(``sync``, ``listing``, ``resume``); nothing here imports Lightning.
"""

from neo.storage.errors import ResolveError
from neo.storage.protocols import B2FileSystem, R2FileSystem, register_protocols
from neo.storage.registry import Registry, RegistryEntry
from neo.storage.resolver import resolve
from neo.storage.settings import StorageSettings

__all__ = ["B2FileSystem", "R2FileSystem", "Registry", "RegistryEntry", "ResolveError", "StorageSettings",
           "register_protocols", "resolve"]

