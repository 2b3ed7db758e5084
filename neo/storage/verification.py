"""``neo-weights verify``: re-hash the cache and check the bucket's sha256 records; count what was checked.

Every cached file is re-hashed against its ``.sha256`` sidecar (and the registry's sha256 when it is a
registry weight). Every registry weight present in the bucket has its recorded sha256 (sidecar and/or
object metadata) compared with the registry's and with the cached copy's. A file whose record is missing,
damaged or contradictory is *unverifiable*: a failure, never "ok".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from neo.storage.errors import HashRecordError, classify
from neo.storage.push import remote_state
from neo.storage.registry import Registry
from neo.storage.resolver import pretrained_cache_path
from neo.storage.settings import StorageSettings
from neo.storage.transfer import SIDECAR, read_local_sidecar, sha256_file

PROBLEMS = ("mismatch", "unverifiable", "error")
_NOT_DATA = (SIDECAR, ".lock", ".part")


@dataclass(frozen=True)
class Check:
    """One verified file. place: "cache" | "bucket"; state: ok | mismatch | unverifiable | error."""

    place: str
    name: str
    state: str
    detail: str = ""


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)

    def counts(self, place: str) -> Counter:
        return Counter(c.state for c in self.checks if c.place == place)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.state in PROBLEMS]

    def summary(self) -> str:
        """One line of counts, e.g. ``cache: 3 checked (2 ok, 1 mismatch); bucket: 2 checked (2 ok)``."""
        parts = []
        for place in ("cache", "bucket"):
            counts = self.counts(place)
            detail = ", ".join(f"{counts[s]} {s}" for s in ("ok", *PROBLEMS) if counts[s])
            parts.append(f"{place}: {sum(counts.values())} checked" + (f" ({detail})" if detail else ""))
        return "; ".join(parts)


def verify(settings: StorageSettings, registry: Registry, framework: str = "all") -> VerifyReport:
    """Check the cache (every file) and the bucket (the registry's weights of ``framework`` it holds)."""
    expected = {pretrained_cache_path(registry.get(n), settings): registry.get(n).sha256 for n in registry.names()}
    report = VerifyReport()
    cache_digests: dict[Path, str] = {}
    for path in cached_files(settings.cache_dir):
        check, digest = _check_cached(path, expected.get(path), settings.cache_dir)
        report.checks.append(check)
        if digest:
            cache_digests[path] = digest
    if settings.bucket and not settings.is_offline:
        for name in registry.names(framework):
            entry = registry.get(name)
            check = _check_bucket(settings, name, settings.pretrained_key(entry.framework, entry.file), entry.sha256,
                                  cache_digests.get(pretrained_cache_path(entry, settings)))
            if check is not None:
                report.checks.append(check)
    return report


def cached_files(cache_dir: Path) -> list[Path]:
    """Data files of the cache (no sidecars, locks, temp files or hidden files)."""
    if not cache_dir.is_dir():
        return []
    return sorted(p for p in cache_dir.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and not p.name.endswith(_NOT_DATA))


def _check_cached(path: Path, registry_sha: str | None, cache_dir: Path) -> tuple[Check, str | None]:
    name = str(path.relative_to(cache_dir))
    try:
        recorded = read_local_sidecar(path)
    except HashRecordError as exc:
        return Check("cache", name, "unverifiable", str(exc)), None
    if recorded is None and registry_sha is None:
        return Check("cache", name, "unverifiable", f"no {SIDECAR} sidecar and no registry sha256"), None
    actual = sha256_file(path)
    for source, want in (("sidecar", recorded), ("registry", registry_sha)):
        if want is not None and actual != want:
            return Check("cache", name, "mismatch", f"sha256 {actual} != {source} {want}"), None
    return Check("cache", name, "ok"), actual


def _check_bucket(settings: StorageSettings, name: str, key: str, registry_sha: str | None,
                  cached_sha: str | None) -> Check | None:
    """The bucket object's record against the registry and the cached copy; None when it is not in the bucket."""
    url = settings.url(key)
    try:
        state = remote_state(settings, key)
    except Exception as exc:  # noqa: BLE001 - reported as a failed check
        return Check("bucket", url, "error", f"{classify(exc)}: {exc}")
    if state.size is None:
        return None
    if state.sha256 is None:
        return Check("bucket", url, "unverifiable", state.problem or "no .sha256 sidecar and no sha256 metadata")
    for source, want in (("registry", registry_sha), ("cached copy", cached_sha)):
        if want is not None and state.sha256 != want:
            return Check("bucket", url, "mismatch", f"recorded sha256 {state.sha256} != {source} {want}")
    return Check("bucket", url, "ok", name)
