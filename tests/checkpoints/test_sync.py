"""CheckpointSync + ckpt_path=auto with a tiny Lightning module against the S3 server (r2://)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from neo.checkpoints.resume import newest_checkpoint
from neo.checkpoints.sync import CheckpointSync
from neo.storage import StorageSettings, resolve
from tests.storage.conftest import BUCKET, KEY_ID, SECRET

torch.set_num_threads(1)
RUN = "tiny-run"


class TinyModule(LightningModule):
    """A linear layer on random data: enough for Lightning to save, rotate and resume checkpoints."""

    def __init__(self, storage: dict | None = None):
        super().__init__()
        self.save_hyperparameters()  # the storage settings land in hparams.yaml, as in a real run
        self.layer = torch.nn.Linear(8, 2)

    def training_step(self, batch, batch_idx):
        self.log("progress", float(self.global_step + 1))
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        return DataLoader(TensorDataset(torch.randn(64, 8, generator=g)), batch_size=4)


def fit(run_dir: Path, settings: StorageSettings, max_steps: int, ckpt_path=None) -> tuple[Trainer, CheckpointSync]:
    sync = CheckpointSync(settings, RUN)
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="{step}", monitor="progress", mode="max",
                           save_top_k=2, every_n_train_steps=4)
    trainer = Trainer(max_steps=max_steps, callbacks=[ckpt], plugins=[sync], default_root_dir=run_dir,
                      logger=TensorBoardLogger(run_dir, name="tb"), enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.fit(TinyModule(storage=dict(bucket=settings.bucket, prefix=settings.prefix)), ckpt_path=ckpt_path)
    return trainer, sync


def bucket_names(settings: StorageSettings) -> set[str]:
    fs, root = settings.bucket_fs()
    fs.invalidate_cache()
    return {Path(p).name for p in fs.find(f"{root}/runs/{RUN}/checkpoints")}


def test_push_rotate_delete_local_resume_from_bucket(tmp_path, endpoint):
    settings = StorageSettings(bucket=f"r2://{BUCKET}", prefix="neo", cache_dir=tmp_path / "cache",
                               drain_timeout_s=30)
    run_dir = tmp_path / "runs" / RUN
    assert newest_checkpoint(run_dir / "checkpoints", RUN, settings) is None

    trainer, sync = fit(run_dir, settings, max_steps=12)
    assert sync.unsynced == []
    local = {p.name for p in (run_dir / "checkpoints").glob("*.ckpt")}
    assert local == {"step=8.ckpt", "step=12.ckpt"}  # step=4 rotated out
    assert bucket_names(settings) == {"step=8.ckpt", "step=8.ckpt.sha256", "step=12.ckpt", "step=12.ckpt.sha256"}
    assert not any((run_dir / "checkpoints" / ".neo-sync").iterdir())  # staged links cleaned up

    # credentials in the environment appear nowhere in the run directory (hparams, TensorBoard, checkpoints)
    for path in run_dir.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert SECRET.encode() not in blob and KEY_ID.encode() not in blob, path

    shutil.rmtree(run_dir)  # the machine is gone; only the bucket remains
    found = newest_checkpoint(run_dir / "checkpoints", RUN, settings)
    assert found.location == f"r2://{BUCKET}/neo/runs/{RUN}/checkpoints/step=12.ckpt" and found.in_bucket
    resumed = resolve(found.location, storage=settings, refresh=True)  # what ckpt_path=auto downloads
    assert resumed.read_bytes() == (tmp_path / "cache/urls/r2" / found.location[5:]).read_bytes()
    assert torch.load(resumed, weights_only=True)["global_step"] == 12

    trainer, sync = fit(run_dir, settings, max_steps=20, ckpt_path=resumed)
    assert trainer.global_step == 20
    assert sync.protected == {"step=12.ckpt"}
    # step=8 rotated out and deleted remotely; step=12 (resumed from) is kept although rotated out
    assert {n for n in bucket_names(settings) if n.endswith(".ckpt")} == {"step=12.ckpt", "step=16.ckpt",
                                                                         "step=20.ckpt"}


def test_bucket_outage_never_fails_training(tmp_path, endpoint, monkeypatch, caplog):
    monkeypatch.setenv("R2_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    from neo.storage.protocols import clear_instance_caches

    clear_instance_caches()
    settings = StorageSettings(bucket=f"r2://{BUCKET}", cache_dir=tmp_path / "cache", retries=1, backoff_s=0.1,
                               drain_timeout_s=3, storage_options={"config_kwargs": {"retries": {"max_attempts": 1}}})
    run_dir = tmp_path / "runs" / RUN
    with caplog.at_level(logging.WARNING):
        trainer, sync = fit(run_dir, settings, max_steps=8)
    assert trainer.global_step == 8
    assert {p.name for p in (run_dir / "checkpoints").glob("*.ckpt")} == {"step=4.ckpt", "step=8.ckpt"}
    assert sync.unsynced and all(u.startswith(f"r2://{BUCKET}/runs/{RUN}/checkpoints/") for u in sync.unsynced)
    assert any("Not synced to the bucket" in r.message for r in caplog.records)


def test_storage_config_holds_no_secrets(tmp_path, endpoint):
    """The composed storage config (what Hydra saves in .hydra/) has no credentials even when they are set."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("conf", version_base="1.3"):
        for choice in ("local", "r2", "b2", "s3", "default"):
            bucket = [] if choice in ("local", "default") else ["storage.bucket=demo"]  # r2/b2/s3 need one
            cfg = compose(overrides=[f"+storage={choice}", f"+paths.data_dir={tmp_path}", *bucket])
            text = OmegaConf.to_yaml(cfg, resolve=True)
            assert SECRET not in text and KEY_ID not in text
            settings = StorageSettings.from_config(cfg.storage)
            assert settings.cache_dir == tmp_path / "cache"
            if choice in ("local", "default"):
                assert settings.bucket == str(tmp_path / "bucket") and settings.protocol == "file"
            else:
                assert settings.protocol == choice
