"""Storage errors: classify a failure (not found, no credentials, access denied, network, corrupt) and report attempts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from neo.config_problems import UserError
from neo.storage.credentials import CREDENTIAL_HINTS, missing_credentials


class CorruptDownloadError(OSError):
    """A downloaded file's size or sha256 does not match what the source declared."""


class OfflineError(OSError):
    """The network was needed but offline mode is on."""


class NoNetworkError(OSError):
    """A host name did not resolve: no network at all, or a wrong endpoint. Not retried."""


class HashRecordError(OSError):
    """The sha256 recorded for a file cannot be trusted: a damaged sidecar with no other record, or two records
    that disagree. Not retried: the bytes cannot be verified until the record is repaired."""


class StorageConfigError(UserError, ValueError):
    """Invalid storage settings (bucket, prefix, numbers, options); the message names each value and its fix."""


class StorageAccessError(UserError, OSError):
    """A bucket transfer failed for good; the message is one paragraph naming the bucket, key, reason and fix."""


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?", re.IGNORECASE)
_NETWORK_NAMES = ("Connect", "Timeout", "ClientPayload", "ServerDisconnected", "IncompleteRead",
                  "ResponseStreamingError", "ProtocolError", "EndpointConnection")


def _status(exc: BaseException) -> int | None:
    """The HTTP status a botocore/s3fs error carries in its response, if any."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status else None
    return None


def classify(exc: BaseException) -> str:
    """Why an access failed: not found | no credentials | access denied | network | no network | corrupt |
    unverifiable | invalid request | offline | error. Only network, corrupt and error are retried.

    Status codes are read from the response, or from the message with URLs and host:port removed (a port such
    as 40312 once made a cut connection read as "access denied"); connection failures are recognised by type
    before any status text is looked at."""
    name = type(exc).__name__
    text = str(exc)
    words = _URL.sub("<url>", text)
    status = _status(exc)
    if isinstance(exc, CorruptDownloadError):
        return "corrupt"
    if isinstance(exc, OfflineError):
        return "offline"
    if isinstance(exc, NoNetworkError) or "Name or service not known" in text \
            or "Temporary failure in name resolution" in text or "nodename nor servname" in text:
        return "no network"
    if isinstance(exc, HashRecordError):
        return "unverifiable"
    if "ParamValidation" in name or "Parameter validation failed" in text or isinstance(exc, StorageConfigError):
        return "invalid request"
    if status is None and (isinstance(exc, (ConnectionError, TimeoutError)) or any(s in name for s in _NETWORK_NAMES)):
        return "network"
    if isinstance(exc, FileNotFoundError) or status == 404 or "NoSuchKey" in text or "NoSuchBucket" in text \
            or re.search(r"\b404\b", words):
        return "not found"
    if "NoCredentials" in name or "PartialCredentials" in name or "endpoint unknown" in text or "Unable to locate credentials" in text:
        return "no credentials"
    if isinstance(exc, PermissionError) or status == 403 or "AccessDenied" in text or "InvalidAccessKeyId" in text \
            or "SignatureDoesNotMatch" in text or re.search(r"\b403\b", words):
        return "access denied"
    if any(s in words for s in ("Connection", "connect", "Timeout", "reset by peer")):
        return "network"
    return "error"


TRANSIENT = {"network", "corrupt", "error"}


def access_hint(exc: BaseException | str, protocol: str | None) -> str:
    """How to fix a failed bucket access, naming the variables to check (never their values); "" if unknown."""
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    reason = classify(exc) if not isinstance(exc, str) else ""
    if "NoSuchBucket" in text or "bucket does not exist" in text:
        return ("The bucket does not exist: create it, or fix storage.bucket (the NEO_BUCKET environment variable "
                "sets it in storage=r2/b2/s3).")
    if reason in ("no credentials", "access denied") or any(
            s in text for s in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "NoCredentials")):
        missing = missing_credentials(protocol)
        hint = CREDENTIAL_HINTS.get(protocol or "", "the provider's credential variables")
        if missing:
            return f"No credentials for {protocol} in the environment ({', '.join(missing)} unset): set {hint}."
        return f"The bucket refused the credentials: check {hint} in the environment."
    return ""


@dataclass
class Attempt:
    """One place the resolver looked and what happened there."""

    place: str
    outcome: str  # "not found", "no credentials", ... or "skipped (offline)"
    detail: str = ""


class ResolveError(UserError, FileNotFoundError):
    """``resolve`` found the identifier nowhere; the message lists every place tried and why."""

    def __init__(self, identifier: str, attempts: list[Attempt], protocol: str | None = None):
        self.identifier = identifier
        self.attempts = attempts
        lines = [f"Could not resolve {identifier!r}. Tried:"]
        for a in attempts:
            detail = f" ({a.detail})" if a.detail else ""
            lines.append(f"  - {a.place}: {a.outcome}{detail}")
        outcomes = {a.outcome for a in attempts}
        hint = CREDENTIAL_HINTS.get(protocol or "", "the provider's credential variables")
        missing = missing_credentials(protocol)
        if missing:
            lines.append(f"No credentials for {protocol} in the environment ({', '.join(missing)} unset): set {hint}.")
        elif "no credentials" in outcomes or "access denied" in outcomes:
            lines.append(f"Check the credentials in the environment: {hint}.")
        if any(o.startswith("skipped (offline)") for o in outcomes):
            lines.append("Offline mode is on (NEO_OFFLINE=1 or storage.offline=true): unset it to download.")
        if "network" in outcomes:
            lines.append("The network failed: check connectivity/endpoint and retry.")
        if "no network" in outcomes:
            lines.append("No network: a host name did not resolve. Check the connection and the endpoint variable, "
                         "or set NEO_OFFLINE=1 to use cached files only.")
        if "unverifiable" in outcomes:
            lines.append("A recorded sha256 cannot be trusted: repair it with `neo-weights push --force FILE --as "
                         "KEY` from a good copy, or delete the object and its .sha256.")
        if any("NoSuchBucket" in a.detail or "bucket does not exist" in a.detail for a in attempts):
            lines.append(access_hint("NoSuchBucket", protocol))
        lines.append("Or pass an existing local path.")
        super().__init__("\n".join(lines))
