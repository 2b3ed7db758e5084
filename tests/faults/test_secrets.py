"""Credentials in the environment reach no file: a full train + upload + eval run against the S3 server, then
every byte of every file written (run folder, .hydra/, logs, TensorBoard, CSV, checkpoints, cache, eval
output, the bucket's objects) and both processes' output are searched for each credential value.
"""

from __future__ import annotations

from tests.conftest import run_cli, train_overrides
from tests.faults.conftest import assert_nothing_lost, neo, output
from tests.storage.conftest import BUCKET, run_env

# One unique marker per variable neo (or botocore) could read credentials from.
MARKERS = {name: f"NEOMARKER{i}{name.replace('_', '')}x7Q" for i, name in enumerate((
    "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "B2_APPLICATION_KEY_ID", "B2_APPLICATION_KEY",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))}


def leaks(blob: bytes) -> list[str]:
    return [name for name, value in MARKERS.items() if value.encode() in blob]


def test_credentials_appear_in_no_file_and_no_output(synth_root, tmp_path, endpoint):
    env = run_env(endpoint.env, **MARKERS)  # the S3 server accepts any credentials: the markers are used
    storage = ["storage=r2", f"storage.bucket=r2://{BUCKET}", f"storage.cache_dir={tmp_path}/cache"]
    trained = neo("neo-train", *train_overrides(synth_root, tmp_path, "model=tiny", "run_name=secrets",
                                                "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                                                "trainer.limit_val_batches=1", "print_config=true", *storage),
                  cwd=tmp_path, env=env)
    assert trained.returncode == 0, output(trained)[-3000:]
    url = f"r2://{BUCKET}/runs/secrets/checkpoints/best.ckpt"
    # neo-eval in this process, with the same environment (neo-train above is the real process)
    evaluated = run_cli("neo-eval", f"checkpoint={url}", f"output_dir={tmp_path}/eval", f"paths.root_dir={tmp_path}",
                        "num_workers=0", *storage, cwd=tmp_path, env=env)
    assert evaluated.returncode == 0, output(evaluated)[-3000:]

    run = tmp_path / "outputs/runs/secrets"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    for expected in (run / ".hydra/config.yaml", run / ".hydra/hydra.yaml", run / ".hydra/overrides.yaml",
                     run / "train.log", run / "checkpoints/best.ckpt", run / "checkpoints/last.ckpt",
                     tmp_path / "eval/metrics.json", tmp_path / "cache/urls/r2" / url[len("r2://"):]):
        assert expected in written, expected  # the places a leak would be are really searched
    assert list(run.glob("tensorboard/events.out.tfevents.*")) and list(run.glob("csv/version_*/*.yaml"))
    assert {str(p): leaks(p.read_bytes()) for p in written if leaks(p.read_bytes())} == {}
    assert leaks(output(trained).encode()) == [] and leaks(output(evaluated).encode()) == []
    objects = endpoint.client.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert {o["Key"] for o in objects} >= {"runs/secrets/checkpoints/best.ckpt", "runs/secrets/checkpoints/last.ckpt"}
    for obj in objects:
        head = endpoint.client.head_object(Bucket=BUCKET, Key=obj["Key"])
        body = endpoint.client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        assert leaks(body) == [] and leaks(repr(head["Metadata"]).encode()) == [], obj["Key"]
    assert_nothing_lost(checkpoints=(run / "checkpoints",), cache=tmp_path / "cache", bucket=(endpoint.client, BUCKET))
