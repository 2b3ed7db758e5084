"""A Hydra callback that refuses credentials on the command line before Hydra writes anything.

Hydra saves the overrides and the composed config into ``.hydra/`` and opens the job's log file before the
command itself runs: a ``checkpoint=r2://KEY:SECRET@bucket/...`` would be written there before any check of
neo's. :class:`CredentialGuard` runs first (``on_run_start`` / ``on_multirun_start``), prints one redacted
paragraph and exits 1, so no file is written. ``neo-eval`` and ``neo-predict`` list it in their
``hydra.callbacks``; ``neo-train``'s :class:`neo.training.run_folder.RunFolderGuard` does the same check.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from neo.config_problems import render
from neo.storage.redact import has_credentials, redact


def credentials_problem(config: DictConfig) -> str | None:
    """The refusal message when the command line or the composed config (the ``hydra`` node aside) holds a
    credential, shown redacted; None otherwise."""
    from neo.storage.settings import _CREDENTIAL_VARIABLES

    overrides = list(config.hydra.overrides.task) if "hydra" in config else []
    secret = [o for o in overrides if has_credentials(o)]
    if not secret:
        plain = OmegaConf.to_container(config, resolve=False)
        plain.pop("hydra", None)
        secret = [f"{key}={value}" for key, value in _strings(plain) if has_credentials(value)]
    if not secret and config.get("storage") is not None:
        try:
            bucket = str(config.storage.get("bucket"))  # NEO_BUCKET reaches it through an interpolation
        except Exception:  # noqa: BLE001 - an unresolvable value: the storage check names it
            bucket = ""
        if has_credentials(bucket):
            secret = [f"storage.bucket={bucket}"]
    if not secret:
        return None
    return render(", ".join(redact(o) for o in secret), "holds credentials (shown as ***). neo never takes credentials "
                  "from the command line, URLs or config files, and writes nothing for this command",
                  f"remove them and set {_CREDENTIAL_VARIABLES} in the environment")


def _strings(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{prefix}{i}.")
    elif isinstance(node, str):
        yield prefix.rstrip("."), node


def refuse_credentials(config: DictConfig) -> None:
    """Print the refusal (naming the command) and exit 1 when ``config`` holds credentials."""
    problem = credentials_problem(config)
    if problem:
        from neo.console import print_user_error

        app = OmegaConf.select(config, "hydra.help.app_name", default=None) or "neo"
        sys.exit(print_user_error(app, problem))


class CredentialGuard(Callback):
    """Hydra callback: a command line holding credentials stops before Hydra writes ``.hydra/`` or a log."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_credentials(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_credentials(config)
