"""``${neo.dirname:${hydra.job.override_dirname},${hydra.job.num}}``: a safe folder name for a sweep point.

Hydra's ``override_dirname`` (``data.resolution=720p,optim.lr=0.0001``) is readable and deterministic
(the same overrides give the same folder, so a re-run with ``ckpt_path=auto`` continues each point),
but it can contain ``/`` (a path value would nest folders) and grow past the 255-byte limit of a file
name. The resolver replaces ``/`` and keeps long names unique with a short hash of the full text.
"""

from __future__ import annotations

import hashlib

from omegaconf import OmegaConf

MAX_LEN = 160  # bytes; well under NAME_MAX (255) so suffixes and tools never hit it
RESOLVER = "neo.dirname"


def sweep_dirname(override_dirname: str, job_num: object = 0) -> str:
    """Folder name of one sweep point: the override string made safe, ``job<num>`` when it is empty."""
    text = str(override_dirname or "").replace("/", "_").replace("\\", "_").strip()
    if not text or text in (".", ".."):
        return f"job{job_num}"
    if len(text.encode()) <= MAX_LEN:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    head = text.encode()[: MAX_LEN - len(digest) - 1].decode(errors="ignore")
    return f"{head}~{digest}"


def register_resolvers() -> None:
    """Register ``neo.dirname`` with OmegaConf (idempotent; needed before Hydra resolves ``hydra.sweep``)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, sweep_dirname)
