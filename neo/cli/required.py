"""The options of neo-eval and neo-predict checked before any work: required ``key=value`` options (``???`` in
their config) and keys nothing reads (a ``+weightz=raw``), one message instead of omegaconf's
MissingMandatoryValue traceback or a silently ignored setting."""

from __future__ import annotations

import sys
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from neo.config_problems import render


def missing_options(cfg: DictConfig, command: str, required: dict[str, str], example: str) -> str | None:
    """The message for the ``required`` options (name -> what it is) left unset, or None when all are set."""
    missing = [name for name in required if OmegaConf.is_missing(cfg, name)]
    if not missing:
        return None
    wanted = "; ".join(f"{name}=<{required[name]}>" for name in missing)
    verb, pronoun = ("is", "it") if len(missing) == 1 else ("are", "them")
    return render(" and ".join(f"{n}=" for n in missing),
                  f"{verb} required ({wanted}); {command} has no default for {pronoun}",
                  f"give {pronoun}. Example: {example}")


def option_problems(cfg: DictConfig, config_name: str, command: str, required: dict[str, str],
                    example: str) -> str | None:
    """Every problem of a command's options in one message (unknown keys with "did you mean", then the required
    options left unset), or None. config_name: the command's primary config (``eval`` for conf/eval.yaml)."""
    from neo.cli.override_errors import unknown_top_level_keys

    problems = unknown_top_level_keys(cfg, config_name)
    missing = missing_options(cfg, command, required, example)
    problems += [missing] if missing else []
    if len(problems) <= 1:
        return problems[0] if problems else None
    return f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def start_checked(command: str, cfg: DictConfig, problems: Callable[[DictConfig], str | None]) -> None:
    """The start of a Hydra command's job: HYDRA_FULL_ERROR back to the user's value, the options checked before
    Lightning loads (a typo is answered in about a second: exit 1 with one paragraph), then the one console
    setup."""
    from neo.cli.output import print_user_error, setup_console
    from neo.cli.override_errors import restore_hydra_error_mode

    restore_hydra_error_mode()  # composition is done: errors from here on are neo's
    message = problems(cfg)
    if message:
        sys.exit(print_user_error(command, message))
    setup_console(lightning=True)
