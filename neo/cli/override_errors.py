"""Explain a Hydra composition error the way neo explains its own: the value, the closest valid keys, the fix.

Hydra answers ``optim.lrr=1e-3`` with "To append to your config use +optim.lrr=1e-3": a user who
follows that trains at the default lr. Here a key that is not in the config gets the closest
existing keys of the same node ("did you mean optim.lr?") and the advice to use ``+`` only for keys
that are really new. Other composition errors (an unknown preset, a malformed override) keep
Hydra's own message, which already lists the options.
"""

from __future__ import annotations

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from neo.config_problems import closest_keys


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
    return (f"neo-train: {full_key} is not a key of this configuration. {hint} Fix the name; write "
            f"+{full_key}=... only to add a genuinely new key (nothing in neo reads a key it does not know, "
            f"so a mistyped one would be silently ignored).")
