"""The one shape of a user's mistake: the value, why it cannot be used, the fix; and the base class of every
error a user causes.

Torch-free on purpose: ``neo-train`` checks a configuration with these before torch or Lightning load.
Owners (data, optimiser, schedule, trainer, run settings) return lists of problem strings so the
configuration checker can report every mistake of a command at once; constructors raise
:class:`SettingsError` with the same text. :func:`render` writes one problem; :class:`UserError` carries it to
the command, which prints it through ``neo.cli.output.print_user_error`` (stderr, no traceback, exit 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class UserError(Exception):
    """A mistake the user can fix (a bad value, a missing file, a refused combination); ``str(exc)`` is the answer.

    The message names the value, why it cannot be used and the fix (:func:`render` writes that shape; a message
    may hold several problems, one per line). Every neo command prints it the same way: ``<command>: <message>``
    on stderr, no traceback, exit 1. Subclasses keep their builtin base (``ValueError``, ``FileNotFoundError``,
    ...) so an ``except ValueError`` around a library call still catches them.
    """

    @classmethod
    def of(cls, value: str, why: str, fix: str) -> UserError:
        """The error for one problem: ``cls(render(value, why, fix))``."""
        return cls(render(value, why, fix))


class SettingsError(UserError, ValueError):
    """One or more arguments of a settings owner are invalid; ``problems`` holds one message each."""

    def __init__(self, problems: list[str] | str):
        problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(" ".join(problems))
        self.problems = problems


def _sentence(text: str) -> str:
    """``text`` ending in one full stop (a question or exclamation keeps its own mark)."""
    text = text.rstrip()
    return text if text.endswith(("?", "!")) else text.rstrip(".") + "."


def render(value: str, why: str, fix: str) -> str:
    """One problem in the one shape: ``"{value} {why}. Fix: {fix}."``.

    value: what the user gave, as they wrote it (``optim.lr=0``, a file path, ``storage=r2``); why: what is wrong
    with it, continuing the sentence; fix: what to do instead. Each sentence gets exactly one closing mark.
    """
    return f"{value} {_sentence(why)} Fix: {_sentence(fix)}"


def problem(key: str, value: Any, what: str, fix: str) -> str:
    """``"{key}={value!r} {what}. Fix: {fix}."``: :func:`render` for a ``key=value`` setting (every owner uses it)."""
    return render(f"{key}={value!r}", what, fix)


def raise_problems(problems: list[str]) -> None:
    """Raise :class:`SettingsError` when ``problems`` is not empty."""
    if problems:
        raise SettingsError(problems)


def is_number(value: Any) -> bool:
    """An int or float that is not a bool (YAML ``true`` is not a learning rate)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def closest_keys(key: str, valid: Iterable[str], limit: int = 3) -> list[str]:
    """Valid keys closest to a mistyped ``key``, best first: difflib ratio >= 0.6 and within 0.1 of the best."""
    scored = sorted(((difflib.SequenceMatcher(None, key, k).ratio(), k) for k in valid), reverse=True)
    scored = [(r, k) for r, k in scored if r >= 0.6]
    return [k for r, k in scored[:limit] if r >= scored[0][0] - 0.1]


def unknown_keys(prefix: str, given: Mapping[str, Any] | Iterable[str], valid: Iterable[str]) -> list[str]:
    """One problem per key of ``given`` that is not in ``valid``, each with the closest valid keys.

    ``prefix`` is the node's dotted path (``optim``; ``""`` for the top level); the message says that a ``+key=value``
    override adds a key nothing reads, so ``+`` is only for genuinely new keys.
    """
    valid = sorted(valid)
    dotted = f"{prefix}." if prefix else ""  # "" for the top level of a command's config
    problems = []
    for key in sorted(set(given) - set(valid)):
        close = [f"{dotted}{k}" for k in closest_keys(key, valid)]
        hint = f"did you mean {' or '.join(close)}?" if close else f"valid keys: {', '.join(valid)}"
        problems.append(render(f"{dotted}{key}", "is not a setting that neo reads, so it would be ignored",
                               f"{hint} (`+{dotted}{key}=...` adds a new key; use `+` only for keys that are "
                               "really new)"))
    return problems


def node_problems(prefix: str, node: Mapping[str, Any] | None, valid: Iterable[str],
                  build: Callable[[dict[str, Any]], Any]) -> list[str]:
    """Problems of a config node for a settings owner: unknown keys, then whatever ``build(known values)`` raises.

    ``build`` constructs the owner from the node's known keys and raises :class:`SettingsError` (or a
    ValueError) when values are invalid; nothing is raised here.
    """
    node, valid = dict(node or {}), set(valid)
    problems = unknown_keys(prefix, node, valid)
    try:
        build({k: v for k, v in node.items() if k in valid})
    except ValueError as exc:
        problems.extend(getattr(exc, "problems", [str(exc)]))
    return problems
