"""Explain a Hydra composition error the way neo explains its own: the value, the closest valid keys, the fix.

Hydra answers ``optim.lrr=1e-3`` with "To append to your config use +optim.lrr=1e-3": a user who
follows that trains at the default lr. Here a key that is not in the config gets the closest
existing keys of the same node ("did you mean optim.lr?") and the advice to use ``+`` only for keys
that are really new. Other composition errors (an unknown preset, a malformed override) keep
Hydra's own message, which already lists the options.

:func:`run_hydra_main` runs a Hydra command (neo-train, neo-eval, neo-predict) so that these errors reach
``print_user_error``; :func:`unknown_top_level_keys` catches the ``+key=value`` that composition accepts but no
code of neo-eval or neo-predict reads (neo-train's settings owners check their own nodes).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib.resources import files

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from neo.config_problems import closest_keys, unknown_keys

HYDRA_FULL_ERROR = "HYDRA_FULL_ERROR"
_user_full_error: str | None = None


def _hydra_text(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{exc}\n{cause}" if isinstance(cause, OmegaConfBaseException) else str(exc)


def explain_composition_error(exc: BaseException) -> str:
    """One paragraph for a failed composition; "did you mean" when a key is not in the config."""
    cause = exc.__cause__
    parent = getattr(cause, "parent_node", None)
    full_key, key = getattr(cause, "full_key", None), getattr(cause, "key", None)
    if not (isinstance(parent, DictConfig) and full_key and key is not None and "not in struct" in str(cause)):
        return _hydra_text(exc)
    prefix = str(full_key)[: -len(str(key))]  # "optim." for optim.lrr, "" at the top level
    close = [f"{prefix}{k}" for k in closest_keys(str(key), [str(k) for k in parent.keys()])]
    node = prefix.rstrip(".") or "the top level"
    hint = (f"Did you mean {' or '.join(close)}?" if close
            else f"Keys of {node}: {', '.join(str(k) for k in parent.keys() if not str(k).startswith('_'))}.")
    return (f"{full_key} is not a key of this configuration. {hint} Fix the name; write "
            f"+{full_key}=... only to add a genuinely new key (nothing in neo reads a key it does not know, "
            f"so a mistyped one would be silently ignored).")


def restore_hydra_error_mode() -> None:
    """Give HYDRA_FULL_ERROR back its user value (:func:`run_hydra_main` sets it while Hydra composes the config);
    the first step of a Hydra main, so an error inside the job reads as the user asked."""
    if _user_full_error is None:
        os.environ.pop(HYDRA_FULL_ERROR, None)
    else:
        os.environ[HYDRA_FULL_ERROR] = _user_full_error


def run_hydra_main(command: str, hydra_main: Callable[[], object]) -> None:
    """Run ``hydra_main`` (a ``@hydra.main`` function); a failed composition is a user error: printed with
    "did you mean" through ``print_user_error``, exit 1. ``HYDRA_FULL_ERROR=1`` keeps Hydra's full traceback."""
    global _user_full_error
    from hydra.errors import CompactHydraException

    from neo.cli.output import print_user_error

    _user_full_error = os.environ.get(HYDRA_FULL_ERROR)
    os.environ[HYDRA_FULL_ERROR] = "1"  # composition errors reach us, not Hydra's printer
    try:
        hydra_main()
    except CompactHydraException as exc:
        if _user_full_error == "1":  # the user asked for Hydra's full traceback
            raise
        sys.exit(print_user_error(command, explain_composition_error(exc)))
    finally:
        restore_hydra_error_mode()


def unknown_top_level_keys(cfg: DictConfig, config_name: str) -> list[str]:
    """One problem per top-level key of ``cfg`` that the command's primary config (``conf/<config_name>.yaml``)
    neither sets nor takes from a config group: a ``+weightz=raw`` that nothing would read."""
    primary = OmegaConf.create(files("conf").joinpath(f"{config_name}.yaml").read_text())
    groups = {str(name).removeprefix("optional ").strip() for entry in primary.get("defaults", [])
              if isinstance(entry, (dict, DictConfig)) for name in entry}
    valid = {str(k) for k in primary if k not in ("defaults", "hydra")} | groups
    return unknown_keys("", [str(k) for k in cfg], valid)
