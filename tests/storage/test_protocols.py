"""r2:// and b2:// file systems: endpoints, regions, credentials from env, checksum policy, equal multipart parts."""

from __future__ import annotations

import fsspec
import pytest

from neo.storage import StorageSettings
from neo.storage.protocols import B2FileSystem, R2FileSystem, clear_instance_caches
from tests.storage.conftest import BUCKET


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("R2_ENDPOINT_URL", "R2_ACCOUNT_ID", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "B2_ENDPOINT_URL",
                "B2_REGION", "B2_APPLICATION_KEY_ID", "B2_APPLICATION_KEY", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "AWS_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    clear_instance_caches()
    yield monkeypatch
    clear_instance_caches()


def test_entry_points_register_the_classes():
    assert fsspec.get_filesystem_class("r2") is R2FileSystem
    assert fsspec.get_filesystem_class("b2") is B2FileSystem


def test_r2_endpoint_region_credentials(clean_env):
    clean_env.setenv("R2_ACCOUNT_ID", "abc123")
    clean_env.setenv("R2_ACCESS_KEY_ID", "r2key")
    clean_env.setenv("R2_SECRET_ACCESS_KEY", "r2secret")
    fs = R2FileSystem()
    assert fs.endpoint_url == "https://abc123.r2.cloudflarestorage.com"
    assert fs.client_kwargs["region_name"] == "auto"
    assert (fs.key, fs.secret) == ("r2key", "r2secret")
    assert fs.config_kwargs["request_checksum_calculation"] == "when_required"
    assert fs.config_kwargs["response_checksum_validation"] == "when_required"
    assert fs.fixed_upload_size is True
    assert "r2secret" not in repr(fs) and "r2secret" not in str(fs.storage_options)
    clean_env.setenv("R2_ENDPOINT_URL", "https://custom.example")
    clear_instance_caches()
    assert R2FileSystem().endpoint_url == "https://custom.example"


def test_b2_endpoint_region_and_aws_fallbacks(clean_env):
    clean_env.setenv("B2_REGION", "us-west-004")
    clean_env.setenv("AWS_ACCESS_KEY_ID", "awskey")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "awssecret")
    fs = B2FileSystem()
    assert fs.endpoint_url == "https://s3.us-west-004.backblazeb2.com"
    assert fs.client_kwargs["region_name"] == "us-west-004"
    assert (fs.key, fs.secret) == ("awskey", "awssecret")
    assert fs.config_kwargs["request_checksum_calculation"] == "when_required"
    assert fs.fixed_upload_size is True
    clean_env.delenv("B2_REGION")
    clean_env.setenv("AWS_S3_ENDPOINT_URL", "https://s3.eu-central-003.backblazeb2.com")
    clear_instance_caches()
    fs = B2FileSystem()
    assert fs.endpoint_url == "https://s3.eu-central-003.backblazeb2.com"
    assert fs.client_kwargs["region_name"] == "eu-central-003"


def test_missing_endpoint_names_the_variables(clean_env):
    with pytest.raises(ValueError, match="R2_ENDPOINT_URL or R2_ACCOUNT_ID"):
        R2FileSystem()
    with pytest.raises(ValueError, match="B2_ENDPOINT_URL or B2_REGION"):
        B2FileSystem()


def test_checksum_policy_cannot_be_overridden(clean_env):
    clean_env.setenv("R2_ACCOUNT_ID", "abc")
    fs = R2FileSystem(config_kwargs={"request_checksum_calculation": "when_supported"})
    assert fs.config_kwargs["request_checksum_calculation"] == "when_required"


def test_secret_storage_options_refused():
    with pytest.raises(ValueError, match="environment"):
        StorageSettings(bucket="r2://x", storage_options={"secret": "s"})


def test_multipart_streamed_write_uses_equal_parts(endpoint):
    """A streamed 12 MiB write in 5 MiB blocks through r2:// completes with equal parts and reads back."""
    data = bytes(range(256)) * (12 * 2**20 // 256)
    fs = fsspec.filesystem("r2")
    with fs.open(f"{BUCKET}/mp/big.bin", "wb", block_size=5 * 2**20) as f:
        for i in range(0, len(data), 3 * 2**20 + 7):  # odd write sizes: parts must still be equal
            f.write(data[i: i + 3 * 2**20 + 7])
    assert fs.cat_file(f"{BUCKET}/mp/big.bin") == data
    parts = endpoint.client.head_object(Bucket=BUCKET, Key="mp/big.bin", PartNumber=1)["ContentLength"]
    assert parts == 5 * 2**20
