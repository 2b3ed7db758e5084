"""Lightning's own fit loop drives the multi-scale sampler: several sizes, then one size for no_aug_epochs."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from neo.data.datamodule import NeoDataModule


class ShapeRecorder(pl.LightningModule):
    """Records (epoch, H, W) of every training batch; a one-parameter model with a dummy loss."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, int, int]] = []

    def training_step(self, batch, batch_idx):
        images, targets = batch
        assert images.dtype == torch.uint8 and len(targets) == images.shape[0]
        self.seen.append((self.current_epoch, *images.shape[2:]))
        return (self.w - 1).pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_fit_loop_switches_off_multiscale_for_last_epochs(tmp_path):
    root = tmp_path / "syn"
    dm = NeoDataModule(root=root, train_images=root / "train", train_annotations=root / "annotations/instances_train.json",
                       val_images=root / "val", val_annotations=root / "annotations/instances_val.json",
                       resolution=[90, 160], train_scales=[0.6, 0.8, 1.0, 1.2, 1.4], batch_size=2,
                       no_aug_epochs=1, max_epochs=3, synthetic={"num_train": 16, "num_val": 2, "size": "160x90"})
    model = ShapeRecorder()
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    by_epoch = {e: {(h, w) for ee, h, w in model.seen if ee == e} for e in range(3)}
    assert len(by_epoch[0] | by_epoch[1]) >= 3  # multi-scale while heavy augmentation is on
    assert by_epoch[2] == {(90, 160)}  # last epoch: the eval size only
    assert [e for e, *_ in model.seen].count(0) == 8


def test_ddp_rebuilds_the_batch_sampler_around_a_distributed_sampler(tmp_path):
    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

    from neo.data.sampler import MultiScaleBatchSampler

    root = tmp_path / "syn"
    dm = NeoDataModule(root=root, train_images=root / "train", train_annotations=root / "annotations/instances_train.json",
                       val_images=root / "val", val_annotations=root / "annotations/instances_val.json",
                       resolution=[90, 160], batch_size=2, no_aug_epochs=1, max_epochs=3,
                       synthetic={"num_train": 8, "num_val": 2, "size": "160x90"})
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = dm.train_dataloader()  # as Lightning calls the hook: it records the constructor args
    sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=1, shuffle=True)
    rebuilt = _update_dataloader(loader, sampler, mode="fit").batch_sampler
    assert isinstance(rebuilt, MultiScaleBatchSampler) and rebuilt.sampler is sampler
    assert (rebuilt.sizes, rebuilt.final_size, len(rebuilt)) == (loader.batch_sampler.sizes, (90, 160), 2)
    sampler.set_epoch(2)  # Lightning sets the epoch on the DistributedSampler; heavy aug follows it
    assert rebuilt.epoch == 2 and not rebuilt.heavy
