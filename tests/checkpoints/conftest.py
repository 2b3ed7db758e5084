"""Bucket fixtures for checkpoint tests: the real S3 server on 127.0.0.1 that tests/storage uses."""

from tests.storage.conftest import endpoint, s3_server, settings  # noqa: F401  (pytest fixtures)
