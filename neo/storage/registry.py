"""The model registry: ``framework/name`` -> file name, origin and expected size/sha256, read from YAML."""

from __future__ import annotations

import difflib
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neo.storage.settings import check_key

DEFAULT_REGISTRY = "registry/weights.yaml"  # inside the `conf` package
# Frameworks whose unlisted names still resolve: name -> (file extension, origin kind).
OPEN_FRAMEWORKS = {"timm": (".pth", "timm"), "ultralytics": (".pt", "ultralytics")}
ORIGIN_KINDS = ("url", "timm", "ultralytics")


@dataclass(frozen=True)
class RegistryEntry:
    """One pretrained weight file.

    name: identifier ``framework/name``; file: file name in cache and bucket;
    origin: {"url": ...} | {"timm": model_name} | {"ultralytics": asset_name};
    size/sha256: expected values when known.
    """

    name: str
    file: str
    origin: dict[str, str]
    sha256: str | None = None
    size: int | None = None
    task: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def framework(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split("/", 1)[1]


def _entry(name: str, spec: dict[str, Any], source: str) -> RegistryEntry:
    if name.count("/") != 1 or not all(name.split("/")):
        raise ValueError(f"Registry {source}: name {name!r} must be 'framework/name'.")
    spec = dict(spec or {})
    file = spec.pop("file", None)
    origin = spec.pop("origin", None) or {}
    if not file or "/" in file:
        raise ValueError(f"Registry {source}: {name} needs 'file:' (a plain file name), got {file!r}.")
    check_key(file)
    if len(origin) != 1 or next(iter(origin)) not in ORIGIN_KINDS:
        raise ValueError(f"Registry {source}: {name} origin must be one of {ORIGIN_KINDS} (one key), got {origin!r}.")
    sha = spec.pop("sha256", None)
    size = spec.pop("size", None)
    if sha is not None and len(str(sha)) != 64:
        raise ValueError(f"Registry {source}: {name} sha256 must be 64 hex characters (quote it), got {sha!r}.")
    return RegistryEntry(name=name, file=file, origin={k: str(v) for k, v in origin.items()},
                         sha256=str(sha).lower() if sha is not None else None, size=int(size) if size else None,
                         task=str(spec.pop("task", "") or ""), extra=spec)


class Registry:
    """Known weights by ``framework/name``; ``get`` also builds entries for unlisted timm/ultralytics names."""

    def __init__(self, entries: dict[str, RegistryEntry]):
        self.entries = entries

    @classmethod
    def load(cls, path: str | Path | None = None) -> Registry:
        """Read a registry YAML (default: the packaged ``conf/registry/weights.yaml``)."""
        if path is None:
            text = importlib.resources.files("conf").joinpath(DEFAULT_REGISTRY).read_text()
            source = f"conf/{DEFAULT_REGISTRY}"
        else:
            text, source = Path(path).read_text(), str(path)
        data = yaml.safe_load(text) or {}
        models = data.get("models") or {}
        return cls({name: _entry(name, spec, source) for name, spec in models.items()})

    def names(self, framework: str = "all") -> list[str]:
        return sorted(n for n, e in self.entries.items() if framework in ("all", e.framework))

    def is_registry_name(self, identifier: str) -> bool:
        """True for listed names and for ``timm/x`` / ``ultralytics/x`` names."""
        if identifier in self.entries:
            return True
        framework, _, name = identifier.partition("/")
        return framework in OPEN_FRAMEWORKS and bool(name) and "/" not in name

    def get(self, identifier: str) -> RegistryEntry:
        if identifier in self.entries:
            return self.entries[identifier]
        framework, _, name = identifier.partition("/")
        if framework in OPEN_FRAMEWORKS and name and "/" not in name:
            ext, kind = OPEN_FRAMEWORKS[framework]
            file = name if name.endswith(ext) else name + ext
            return RegistryEntry(name=identifier, file=check_key(file), origin={kind: name if kind == "timm" else file})
        near = self.near_names(identifier)
        hint = f"did you mean {' or '.join(map(repr, near))}?" if near else "`neo-weights list` shows every name."
        raise KeyError(f"{identifier!r} is not in the model registry; {hint}")

    def near_names(self, identifier: str) -> list[str]:
        """Listed names close to a mistyped ``framework/name`` (at most two; empty when nothing is close)."""
        if identifier.count("/") != 1:
            return []
        framework = identifier.split("/", 1)[0]
        same_framework = any(n.startswith(f"{framework}/") for n in self.entries)
        return difflib.get_close_matches(identifier, self.names(), n=2, cutoff=0.6 if same_framework else 0.85)
