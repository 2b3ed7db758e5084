"""The one bucket parser: what each bucket setting means, and the one-paragraph refusals (no server needed)."""

from __future__ import annotations

import pytest

from neo.storage.errors import StorageConfigError
from neo.storage.settings import StorageSettings, bucket_from_env, parse_bucket, redact_url

ACCEPTED = [
    ("r2://team-weights", None, "r2://team-weights"),
    ("r2://team-weights/", "r2", "r2://team-weights"),
    ("r2://team-weights/neo/v2", "local", "r2://team-weights/neo/v2"),
    ("team-weights", "r2", "r2://team-weights"),
    ("team.weights-2", "b2", "b2://team.weights-2"),
    ("team-weights", "s3", "s3://team-weights"),
    ("team-weights", "local", "team-weights"),
    ("data/bucket", None, "data/bucket"),
    ("data/bucket/", None, "data/bucket"),
    ("/abs/bucket", None, "/abs/bucket"),
    ("~/bucket", None, "~/bucket"),
    ("file:///abs/bucket/", None, "file:///abs/bucket"),
    (None, None, None),
    ("", "local", None),
]


@pytest.mark.parametrize(("value", "provider", "expected"), ACCEPTED)
def test_accepted_bucket_settings_and_their_meaning(value, provider, expected):
    assert parse_bucket(value, provider) == expected
    if expected is not None:  # canonical values mean the same when parsed again
        assert parse_bucket(expected, provider) == expected


REFUSED = [
    ("r2://", None, "storage.bucket='r2://' has no bucket name. Fix: storage.bucket=r2://<bucket-name>."),
    ("r2:", None, "storage.bucket='r2:' is not a URL: the scheme 'r2' needs '://'. Fix: storage.bucket=r2://<bucket-name>."),
    ("r2:/bkt", None, "storage.bucket='r2:/bkt' is not a URL: the scheme 'r2' needs '://'. Fix: storage.bucket=r2://bkt."),
    ("", "r2", "storage.bucket='' is empty but storage=r2 needs a bucket."),
    (None, "b2", "storage.bucket is not set, but storage=b2 needs a bucket. Fix: storage.bucket=<name> or "
                 "storage.bucket=b2://<name>"),
    ("mybucket", None, "storage.bucket='mybucket' is a bare name, but no provider says which storage it is in. "
                       "Fix: give the URL (r2://mybucket, b2://mybucket or s3://mybucket), or write ./mybucket"),
    ("r2://Bad_Bucket!", None, "has the invalid bucket name 'Bad_Bucket!'"),
    ("r2://has space", None, "has the invalid bucket name 'has space'"),
    ("Bad_Bucket", "r2", "storage.bucket='Bad_Bucket' has the invalid bucket name 'Bad_Bucket'"),
    ("ab", "r2", "has the invalid bucket name 'ab'"),
    ("192.168.1.1", "s3", "has the invalid bucket name '192.168.1.1'"),
    ("r2://bkt1/a//b", None, "it has an empty part ('//')"),
    ("r2://bkt1/../x", None, "'..' is not allowed in keys"),
    ("./folder", "r2", "storage.bucket='./folder' is a folder but storage=r2 stores in a r2 bucket. Fix: "
                       "storage.bucket=<bucket-name> for the bucket, or storage=local storage.bucket=./folder"),
    ("b2://team", "r2", "storage.bucket='b2://team' is a b2 bucket but storage=r2. Fix: storage=b2"),
    ("gs://team-bucket", None, "storage.bucket='gs://team-bucket' uses an unknown storage scheme 'gs'"),
    ("file://", None, "is not a local folder URL. Fix: file:///absolute/folder."),
    (3, None, "storage.bucket=3 is not a URL or folder."),
]


@pytest.mark.parametrize(("value", "provider", "message"), REFUSED)
def test_mistyped_bucket_settings_are_refused_naming_value_and_fix(value, provider, message):
    with pytest.raises(StorageConfigError) as info:
        parse_bucket(value, provider)
    assert message in str(info.value)
    assert "Fix:" in str(info.value) and "\n" not in str(info.value)


def test_credentials_in_a_bucket_url_are_refused_without_repeating_them():
    for value in ("r2://AKIAKEY:s3cr3t-value@team-weights/x", "s3://s3cr3t-value@team-weights"):
        with pytest.raises(StorageConfigError) as info:
            StorageSettings(bucket=value)
        assert "s3cr3t-value" not in str(info.value) and "AKIAKEY" not in str(info.value)
        assert "***@team-weights" in str(info.value) and "in the environment" in str(info.value)
    assert redact_url("r2://a:b@bkt/k") == "r2://***@bkt/k"


def test_from_config_is_the_validation_entry_point_naming_every_problem():
    with pytest.raises(StorageConfigError) as info:
        StorageSettings.from_config({"provider": "r2", "bucket": "r2:/team", "retries": -1, "lock_timeout_s": 0,
                                     "storage_options": {"secret": "hidden-value"}})
    message = str(info.value)
    for part in ("storage.bucket='r2:/team' is not a URL", "storage.retries=-1 must be a number >= 0",
                 "storage.lock_timeout_s=0 must be a number > 0", "secret option(s) ['secret'] (values not shown)"):
        assert part in message
    assert "hidden-value" not in message
    with pytest.raises(StorageConfigError, match=r"storage has unknown key\(s\) \['buckett'\]"):
        StorageSettings.from_config({"buckett": "r2://x"})
    with pytest.raises(StorageConfigError, match="storage.provider='gcs' is not a storage provider"):
        StorageSettings.from_config({"provider": "gcs", "bucket": "team"})
    settings = StorageSettings.from_config({"provider": "r2", "bucket": "team-weights", "prefix": "neo"})
    assert (settings.bucket, settings.protocol, settings.url("checkpoints/a.ckpt")) == (
        "r2://team-weights", "r2", "r2://team-weights/neo/checkpoints/a.ckpt")


def test_neo_bucket_set_but_empty_is_an_error_not_no_bucket(monkeypatch):
    monkeypatch.setenv("NEO_BUCKET", "")
    with pytest.raises(StorageConfigError, match="NEO_BUCKET='' is set but empty"):
        bucket_from_env("data/bucket")
    with pytest.raises(StorageConfigError, match="NEO_BUCKET='' is set but empty"):
        StorageSettings.from_env()
    monkeypatch.setenv("NEO_BUCKET", "team-weights")
    with pytest.raises(StorageConfigError, match="is a bare name, but no provider"):
        StorageSettings.from_env()
    assert StorageSettings.from_env(provider="b2").bucket == "b2://team-weights"
    monkeypatch.delenv("NEO_BUCKET")
    assert StorageSettings.from_env().bucket is None
    assert StorageSettings.from_env(default_bucket="data/bucket").bucket == "data/bucket"


@pytest.mark.parametrize(("overrides", "bucket"), [
    (["storage=r2", "storage.bucket=team-weights"], "r2://team-weights"),
    (["storage=b2", "storage.bucket=b2://team-weights"], "b2://team-weights"),
    (["storage=s3"], "s3://from-env"),
    (["storage=local", "storage.bucket=r2://team-weights"], "r2://team-weights"),
])
def test_hydra_storage_choices_give_the_providers_bucket(overrides, bucket, monkeypatch, tmp_path):
    from tests.training.helpers import compose_train

    monkeypatch.setenv("NEO_BUCKET", "from-env")
    cfg = compose_train([f"paths.root_dir={tmp_path}", *overrides])
    assert StorageSettings.from_config(cfg.storage).bucket == bucket


@pytest.mark.parametrize("provider", ["r2", "b2", "s3"])
def test_a_remote_storage_without_a_bucket_is_refused_not_given_a_default_name(provider, monkeypatch, tmp_path):
    """``storage=r2`` alone once meant a bucket named "neo" (someone else's, or none): now the override to give."""
    from tests.training.helpers import compose_train

    monkeypatch.delenv("NEO_BUCKET", raising=False)
    cfg = compose_train([f"paths.root_dir={tmp_path}", f"storage={provider}"])
    assert cfg.storage.bucket is None
    with pytest.raises(StorageConfigError) as info:
        StorageSettings.from_config(cfg.storage)
    assert str(info.value) == (
        f"storage.bucket is not set, but storage={provider} needs a bucket. Fix: storage.bucket=<name> or "
        f"storage.bucket={provider}://<name> (NEO_BUCKET=<name> sets it too), or storage=local for a local folder.")
    monkeypatch.setenv("NEO_BUCKET", "team-weights")
    named = compose_train([f"paths.root_dir={tmp_path}", f"storage={provider}"])
    assert StorageSettings.from_config(named.storage).bucket == f"{provider}://team-weights"


def test_the_local_storage_keeps_its_folder_default(monkeypatch, tmp_path):
    from tests.training.helpers import compose_train

    monkeypatch.delenv("NEO_BUCKET", raising=False)
    for choice in ([], ["storage=local"]):
        cfg = compose_train([f"paths.root_dir={tmp_path}", *choice])
        assert StorageSettings.from_config(cfg.storage).bucket == f"{tmp_path}/data/bucket"
