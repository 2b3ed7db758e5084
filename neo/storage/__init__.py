"""neo.storage: r2:// and b2:// protocols, the weight/checkpoint resolver, the registry, Lightning checkpoint sync.

Public API (the training layer uses these):
    StorageSettings.from_config(cfg.storage)
    resolve(identifier, *, storage=None, registry=None, refresh=False) -> Path
    CheckpointSync(storage, run_name)                                   # Trainer(plugins=[...])
    find_auto_checkpoint(run_name, settings, local_dir=None) -> Path | None   # downloads if only in the bucket
    locate_auto_checkpoint(run_name, settings, local_dir=None) -> str | None  # local path or bucket URL
``CheckpointSync`` and the checkpoint functions import Lightning lazily.
"""

from neo.storage.errors import ResolveError
from neo.storage.protocols import B2FileSystem, R2FileSystem, register_protocols
from neo.storage.registry import Registry, RegistryEntry
from neo.storage.resolver import resolve
from neo.storage.settings import StorageSettings

__all__ = ["B2FileSystem", "R2FileSystem", "Registry", "RegistryEntry", "ResolveError", "StorageSettings",
           "register_protocols", "resolve"]

