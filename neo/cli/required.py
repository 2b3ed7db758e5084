"""Required ``key=value`` options of the Hydra commands (``???`` in their config): one clear line instead of
omegaconf's MissingMandatoryValue traceback."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def missing_options(cfg: DictConfig, command: str, required: dict[str, str], example: str) -> str | None:
    """The message for the ``required`` options (name -> what it is) left unset, or None when all are set."""
    missing = [name for name in required if OmegaConf.is_missing(cfg, name)]
    if not missing:
        return None
    wanted = "; ".join(f"{name}=<{required[name]}>" for name in missing)
    verb = "is" if len(missing) == 1 else "are"
    return (f"{' and '.join(f'{n}=' for n in missing)} {verb} required ({wanted}); {command} has no default for "
            f"{'it' if len(missing) == 1 else 'them'}. Example: {example}")
