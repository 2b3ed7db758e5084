"""fsspec protocols ``r2://`` and ``b2://``: s3fs subclasses configured for Cloudflare R2 and Backblaze B2.

Both are registered through the package entry points ``fsspec.specs`` (``r2``, ``b2``), so
``fsspec.open("r2://bucket/key")`` works in any process: neo, Lightning's ``ckpt_path``, a user's script.
Endpoints and credentials come only from the environment (never from config files):

- R2: endpoint ``R2_ENDPOINT_URL`` or ``https://$R2_ACCOUNT_ID.r2.cloudflarestorage.com``, region ``auto``;
  credentials ``R2_ACCESS_KEY_ID`` / ``R2_SECRET_ACCESS_KEY``.
- B2: endpoint ``B2_ENDPOINT_URL`` or ``https://s3.$B2_REGION.backblazeb2.com``, region ``B2_REGION``;
  credentials ``B2_APPLICATION_KEY_ID`` / ``B2_APPLICATION_KEY``.
- Both fall back to ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` and the endpoint ``AWS_S3_ENDPOINT_URL``.

Both send checksums only when required (botocore >= 1.36 headers are rejected by R2 and B2) and
upload multipart objects in equal-size parts (R2 rejects unequal parts).
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import fsspec
from s3fs import S3FileSystem

from neo.storage.credentials import env as _env
from neo.storage.errors import NoNetworkError

# botocore >= 1.36 adds x-amz-checksum-* headers by default; R2 and B2 reject them.
CHECKSUM_WHEN_REQUIRED = {
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
}
# Bounded botocore retries: neo's resolver retries with its own backoff and reports the reason.
BOTOCORE_RETRIES = {"retries": {"max_attempts": 3, "mode": "standard"}, "connect_timeout": 10}


class _ProviderFileSystem(S3FileSystem):
    """Common part of the R2 and B2 file systems: env credentials, checksum policy, equal parts."""

    provider = ""
    retries = 2  # s3fs-level retries (reads, throttling); neo's resolver/uploader retry on top with backoff
    endpoint_env: tuple[str, ...] = ()
    key_env: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()

    def __init__(self, *args, endpoint_url=None, key=None, secret=None, client_kwargs=None,
                 config_kwargs=None, fixed_upload_size=True, **kwargs):
        endpoint_url = endpoint_url or self.default_endpoint()
        if not endpoint_url:
            raise ValueError(
                f"{self.provider} endpoint unknown: set {' or '.join(self.endpoint_env)} "
                f"(or AWS_S3_ENDPOINT_URL) in the environment."
            )
        client_kwargs = {"region_name": self.default_region(endpoint_url), **(client_kwargs or {})}
        config_kwargs = {**BOTOCORE_RETRIES, **(config_kwargs or {}), **CHECKSUM_WHEN_REQUIRED}
        super().__init__(
            *args,
            endpoint_url=endpoint_url,
            key=key or _env(*self.key_env, "AWS_ACCESS_KEY_ID"),
            secret=secret or _env(*self.secret_env, "AWS_SECRET_ACCESS_KEY"),
            client_kwargs=client_kwargs,
            config_kwargs=config_kwargs,
            fixed_upload_size=fixed_upload_size,
            **kwargs,
        )

    @classmethod
    def default_endpoint(cls) -> str | None:
        """The endpoint URL from the provider's environment variables (each provider class defines it)."""
        raise TypeError(f"{cls.__name__} is the shared base of R2FileSystem and B2FileSystem; use one of them")

    @classmethod
    def default_region(cls, endpoint_url: str) -> str:
        """The signing region for ``endpoint_url`` (each provider class defines it)."""
        raise TypeError(f"{cls.__name__} is the shared base of R2FileSystem and B2FileSystem; use one of them")

    def __repr__(self) -> str:  # never show key/secret
        return f"{type(self).__name__}(endpoint_url={self.endpoint_url!r})"


class R2FileSystem(_ProviderFileSystem):
    """Cloudflare R2 as ``r2://bucket/key`` (region ``auto``)."""

    protocol = ("r2",)
    provider = "R2"
    endpoint_env = ("R2_ENDPOINT_URL", "R2_ACCOUNT_ID")
    key_env = ("R2_ACCESS_KEY_ID",)
    secret_env = ("R2_SECRET_ACCESS_KEY",)

    @classmethod
    def default_endpoint(cls) -> str | None:
        if url := _env("R2_ENDPOINT_URL"):
            return url
        if account := _env("R2_ACCOUNT_ID"):
            return f"https://{account}.r2.cloudflarestorage.com"
        return _env("AWS_S3_ENDPOINT_URL")

    @classmethod
    def default_region(cls, endpoint_url: str) -> str:
        return "auto"


class B2FileSystem(_ProviderFileSystem):
    """Backblaze B2 (S3-compatible API) as ``b2://bucket/key`` (region from ``B2_REGION`` or the endpoint)."""

    protocol = ("b2",)
    provider = "B2"
    endpoint_env = ("B2_ENDPOINT_URL", "B2_REGION")
    key_env = ("B2_APPLICATION_KEY_ID",)
    secret_env = ("B2_APPLICATION_KEY",)

    @classmethod
    def default_endpoint(cls) -> str | None:
        if url := _env("B2_ENDPOINT_URL"):
            return url
        if region := _env("B2_REGION"):
            return f"https://s3.{region}.backblazeb2.com"
        return _env("AWS_S3_ENDPOINT_URL")

    @classmethod
    def default_region(cls, endpoint_url: str) -> str:
        if region := _env("B2_REGION"):
            return region
        match = re.search(r"s3\.([a-z0-9-]+)\.backblazeb2\.com", endpoint_url)
        return match.group(1) if match else "us-east-1"


_RESOLVED_HOSTS: set[tuple[str, int]] = set()


def ensure_host_resolves(url: str, what: str) -> None:
    """Fail fast with NoNetworkError when the host of ``url`` does not resolve (no network at all, or a wrong
    endpoint) instead of retrying a DNS failure for a minute. Successes are remembered for the process."""
    parts = urlsplit(url)
    if not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if (parts.hostname, port) in _RESOLVED_HOSTS:
        return

    try:
        socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NoNetworkError(f"the host {parts.hostname!r} of {what} does not resolve ({exc.strerror}): there is no "
                             "network, or the endpoint is wrong") from None
    _RESOLVED_HOSTS.add((parts.hostname, port))


def ensure_endpoint_resolves(fs: fsspec.AbstractFileSystem) -> None:
    """``ensure_host_resolves`` for the endpoint of an S3-compatible file system (others: nothing to check)."""
    if not isinstance(fs, S3FileSystem):
        return
    endpoint = getattr(fs, "endpoint_url", None) or (fs.client_kwargs or {}).get("endpoint_url")
    if endpoint:
        variables = {"r2": "R2_ENDPOINT_URL / R2_ACCOUNT_ID", "b2": "B2_ENDPOINT_URL / B2_REGION"}
        name = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
        ensure_host_resolves(endpoint, f"the {name} endpoint ({variables.get(name, 'endpoint_url')})")


def clear_instance_caches() -> None:
    """Forget cached s3/r2/b2 file system instances (fsspec caches one per class): env changes apply again."""
    for cls in (S3FileSystem, R2FileSystem, B2FileSystem):
        cls.clear_instance_cache()


def register_protocols() -> None:
    """Register ``r2`` and ``b2`` with fsspec in this process (the entry points do it when installed)."""
    fsspec.register_implementation("r2", R2FileSystem, clobber=True)
    fsspec.register_implementation("b2", B2FileSystem, clobber=True)
