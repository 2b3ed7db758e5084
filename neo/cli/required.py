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
    return f"{command} needs {' and '.join(f'{n}=' for n in missing)} ({wanted}). Example: {example}"
