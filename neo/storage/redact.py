"""The one redaction of credentials written into a URL or an override: every place neo prints, logs or saves a
URL or a command line goes through :func:`redact`.

Recognised (and replaced by ``***``), wherever they appear in a text:
- ``scheme://KEY:SECRET@bucket/...`` and ``scheme://KEY@bucket`` (the secret may contain ``/``);
- single-slash and no-slash typos: ``r2:/KEY:SECRET@bucket``, ``r2:KEY:SECRET@bucket``;
- a bare ``KEY:SECRET@bucket`` value (``storage.bucket=KEY:SECRET@bucket``).
A path or key that merely contains ``@`` (``runs/x@2/last.ckpt``) is left alone: a ``user:password`` needs its
colon before any ``/``, and a lone ``user@`` only counts right after ``://``.
"""

from __future__ import annotations

import re
from typing import Any

# KEY:SECRET@ at the start of a value (after a separator), with an optional scheme and 0-3 slashes in front.
_KEY_SECRET = re.compile(
    r"(?P<lead>(?:^|(?<=[\s='\"(,\[{]))(?:[A-Za-z][A-Za-z0-9+.-]*:)?/{0,3})"
    r"(?P<user>[^\s@/:'\"=,\[\]{}()]+):(?!//)(?P<secret>[^\s@'\"]+)@"
)
# scheme://USER@ (no password) right after the scheme.
_USER_ONLY = re.compile(r"(?P<lead>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s@/:'\"]+)@")


def redact(text: Any) -> str:
    """``text`` (any object, as ``str``) with every credential inside a URL or override replaced by ``***``."""
    value = str(text)
    value = _KEY_SECRET.sub(lambda m: f"{m.group('lead')}***@", value)
    return _USER_ONLY.sub(lambda m: f"{m.group('lead')}***@", value)


def has_credentials(text: Any) -> bool:
    """True when ``text`` holds a credential that :func:`redact` would hide."""
    return redact(text) != str(text)


def redact_all(value: Any) -> Any:
    """``redact`` applied to every string inside nested lists/tuples/dicts (keys too); other values unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_all(k): redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_all(v) for v in value)
    return value
