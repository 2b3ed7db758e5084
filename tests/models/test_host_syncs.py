"""Host synchronisations per training step, counted on the CPU (see host_syncs.py for what counts).

Every such call makes a GPU run wait for the device, so the step keeps only the ones it needs:
- the model step (forward + criterion + backward): ONE, the matcher's copy of every cost matrix to the host
  (scipy solves the assignments there) -- before issue 26 the tiny preset made 10 (one copy per matched set,
  one per image for the denoising indices, a nonzero() and num_boxes' .item());
- RTDETRModule.training_step, logging included: one more, the non-finite loss check, which must stop the
  run before a NaN reaches the weights (``self.log`` of tensors adds none).
"""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from host_syncs import HostSyncCounter
from omegaconf import OmegaConf
from rtdetr_testdata import make_shapes

import conf
from neo.models.rtdetr import build_preset, load_preset_config


def _batch(n: int = 4, empty: int | None = 2):
    images, targets = make_shapes(n, 144, 256, seed=1, max_objects=4)
    if empty is not None:  # an image without boxes takes its own paths in the matcher and the denoising groups
        targets[empty] = {**targets[empty], "labels": targets[empty]["labels"][:0], "boxes": targets[empty]["boxes"][:0]}
    return images, targets


def test_the_counter_sees_each_kind_of_synchronisation() -> None:
    """The counter this file rests on: every kind it claims to see, it sees (so a regression would fail)."""
    x = torch.arange(6.0)
    with HostSyncCounter() as counter:
        x.sum().item()
        x.tolist()
        float(x[0])
        bool(x[1] > 0)
        torch.nonzero(x)
        x[x > 2]
        x[x > 4] = 0.0
        host = (x * 2).cpu()  # one copy; what is done with the host tensor afterwards is free
        host.numpy(), host.tolist(), float(host[0])
        x.repeat_interleave(torch.tensor([1, 2, 1, 1, 1, 1]))
        x.repeat_interleave(torch.tensor([1, 2, 1, 1, 1, 1]), output_size=7)  # size given: no sync
        x[1:3] = 1.0  # slices and integer indices are not syncs
    kinds = [kind for kind, _ in counter.calls]
    assert kinds == ["item", "tolist", "__float__", "__bool__", "torch.nonzero", "bool-mask index",
                     "bool-mask assign", "cpu", "repeat_interleave"], counter.report()
    assert all(site.startswith("test_host_syncs.py:") for _, site in counter.calls)


def test_the_counter_leaves_torch_as_it_found_it() -> None:
    """Exiting puts back exactly what was there: no inherited method left behind as a class attribute of
    torch.Tensor (with __getitem__ set on it, a later ONNX trace of ``torch.tensor([h, w])`` failed)."""
    tensor_attrs, torch_attrs = dict(vars(torch.Tensor)), dict(vars(torch))
    with HostSyncCounter():
        pass
    assert dict(vars(torch.Tensor)) == tensor_attrs
    assert {k: v for k, v in vars(torch).items() if k in torch_attrs} == torch_attrs
    traced = torch.jit.trace(lambda x: x + torch.tensor([*x.shape[-2:]]).sum(), torch.zeros(1, 2, 3))
    assert traced(torch.zeros(1, 2, 3)).sum() == 5 * 6


@pytest.mark.parametrize("layers", [3, 6])
def test_model_step_waits_for_the_device_once(layers: int) -> None:
    """Forward + criterion + backward of the tiny preset: one cost-matrix transfer, whatever the decoder depth."""
    torch.manual_seed(0)
    net, criterion, _ = build_preset("tiny", num_classes=3, overrides={"net.decoder.num_layers": layers})
    images, targets = _batch()
    net.train()
    with HostSyncCounter() as counter:
        outputs = net(images, targets)
        in_forward = counter.count
        losses = criterion(outputs, targets)
        torch.stack(list(losses.values())).sum().backward()
    print(f"\ntiny preset, {layers} decoder layers, batch of 4 (forward {in_forward}, criterion + backward "
          f"{counter.count - in_forward}): {counter.report()}")
    assert len(losses) == 3 * (2 * layers + 1)
    assert counter.count == 1, counter.report()
    ((kind, site),) = counter.calls
    assert kind == "cpu" and site.startswith("matcher.py:"), counter.report()


def test_an_all_empty_batch_needs_no_transfer_at_all() -> None:
    torch.manual_seed(0)
    net, criterion, _ = build_preset("tiny", num_classes=3)
    images, targets = _batch(2, empty=None)
    targets = [{**t, "labels": t["labels"][:0], "boxes": t["boxes"][:0]} for t in targets]
    with HostSyncCounter() as counter:
        losses = criterion(net(images, targets), targets)
        torch.stack(list(losses.values())).sum().backward()
    assert counter.count == 0, counter.report()


def _as_is(batch):
    return batch


class _CountingStep(pl.Callback):
    """Counts the synchronisations of the module's training_step and of each whole batch (hooks, callbacks,
    backward and optimizer step included) of a real Lightning fit."""

    def __init__(self, counter: HostSyncCounter) -> None:
        self.counter = counter
        self.per_batch: list[int] = []
        self._start = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.counter.active = True
        self._start = self.counter.count

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.per_batch.append(self.counter.count - self._start)  # (callbacks listed after this one not counted)

    def on_train_end(self, trainer, pl_module) -> None:
        self.counter.active = False  # teardown (the module back to the CPU) is not a step


def test_lightning_training_step_with_logging_waits_twice(tmp_path) -> None:
    """RTDETRModule.training_step in a real fit (gradient clipping, EMA): the matcher's transfer and the
    non-finite loss check; the step's ``self.log`` calls add nothing."""
    from pathlib import Path

    from neo.training.callbacks import TrainSpeedMonitor
    from neo.training.ema import EMA
    from neo.training.module import RTDETRModule

    model = OmegaConf.to_container(load_preset_config("tiny", num_classes=3), resolve=True)
    optim = OmegaConf.to_container(OmegaConf.load(Path(conf.__file__).parent / "optim" / "default.yaml"), resolve=True)
    torch.manual_seed(0)
    module = RTDETRModule(model=model, optim=optim)
    images, targets = _batch()
    batches_in = [(images[:2], targets[:2]), (images[2:], targets[2:]), (images[:2], targets[:2])]
    loader = torch.utils.data.DataLoader(batches_in, batch_size=None, collate_fn=_as_is)

    counter = HostSyncCounter()
    step_counts: list[list[tuple[str, str]]] = []
    original = module.training_step

    def counted_step(batch, batch_idx):
        before = counter.count
        loss = original(batch, batch_idx)
        step_counts.append(counter.calls[before:])
        return loss

    module.training_step = counted_step
    batches = _CountingStep(counter)
    trainer = pl.Trainer(accelerator="cpu", max_steps=3, gradient_clip_val=0.1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=[EMA(), TrainSpeedMonitor(), batches],
                         default_root_dir=tmp_path)
    with counter:
        counter.active = False  # counted from the first batch on (setup is not a step)
        trainer.fit(module, train_dataloaders=loader)
    print(f"\nper training_step: {[len(c) for c in step_counts]}; per whole batch (hooks, backward, clipping, "
          f"optimizer, EMA): {batches.per_batch}\n{counter.report()}")
    assert trainer.global_step == 3 and len(step_counts) == 3
    for calls in step_counts:
        kinds = sorted(f"{kind} at {site.split(':')[0]}" for kind, site in calls)
        assert kinds == ["cpu at matcher.py", "cpu at module.py"], calls
