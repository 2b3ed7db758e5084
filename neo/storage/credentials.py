"""Which environment variables hold each provider's credentials; read by protocols, errors and push."""

from __future__ import annotations

import os


def env(*names: str) -> str | None:
    """First non-empty environment variable among ``names``."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


# Which environment variables unlock each protocol: quoted in resolver error messages.
CREDENTIAL_HINTS = {
    "r2": "R2_ACCOUNT_ID (or R2_ENDPOINT_URL), R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY",
    "b2": "B2_REGION (or B2_ENDPOINT_URL), B2_APPLICATION_KEY_ID, B2_APPLICATION_KEY",
    "s3": "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL_S3 for non-AWS endpoints)",
}


def missing_credentials(protocol: str | None) -> list[str]:
    """Names of the credential variables of ``protocol`` (r2/b2/s3) that are unset, fallbacks included."""
    pairs = {"r2": (("R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"), ("R2_ENDPOINT_URL", "R2_ACCOUNT_ID")),
             "b2": (("B2_APPLICATION_KEY_ID", "B2_APPLICATION_KEY"), ("B2_ENDPOINT_URL", "B2_REGION")),
             "s3": (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ())}.get(protocol or "")
    if pairs is None:
        return []
    (key, secret), endpoints = pairs
    missing = []
    if not env(key, "AWS_ACCESS_KEY_ID"):
        missing.append(key)
    if not env(secret, "AWS_SECRET_ACCESS_KEY"):
        missing.append(secret)
    if endpoints and not env(*endpoints, "AWS_S3_ENDPOINT_URL"):
        missing.append(" or ".join(endpoints))
    return missing
