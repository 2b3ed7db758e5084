"""Training machinery on a stand-in detector: EMA is validated and stored, non-finite loss stops cleanly,
resume restores everything (weights, EMA, optimizer, schedule, RNG), checkpoints load weights-only."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import open_dict

from neo.training.module import NonFiniteLossError
from neo.training.run import train
from tests.conftest import train_overrides
from tests.training.helpers import compose_train


class CaptureValidatedWeights(Callback):
    """Records the weights the module holds during each validation (after EMA swapped them in)."""

    def __init__(self) -> None:
        self.validated: list[dict[str, torch.Tensor]] = []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.validated.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def _cfg(synth_root, out, *extra):
    return compose_train(train_overrides(synth_root, out, "optim.schedule.warmup=0", "optim.lr=1e-2", *extra),
                         toy=True)


def test_ema_weights_differ_from_raw_and_are_the_validated_ones(synth_root, tmp_path, monkeypatch) -> None:
    capture = CaptureValidatedWeights()
    import neo.training.run as run_module

    original = run_module.instantiate_each
    monkeypatch.setattr(run_module, "instantiate_each",
                        lambda node: original(node) + ([capture] if node is not None and "ema" in node else []))
    cfg = _cfg(synth_root, tmp_path, "trainer.max_epochs=2", "callbacks.ema.decay=0.9", "callbacks.ema.ramp=0")
    summary = train(cfg)
    ckpt = torch.load(summary.last_checkpoint, weights_only=True)
    ema, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert int(ckpt["averaging_state"]["n_averaged"]) == 12  # 6 batches x 2 epochs, one update per step
    diff = max(float((ema[k].float() - raw[k].float()).abs().max()) for k in ema if ema[k].is_floating_point())
    assert diff > 1e-4, "EMA weights equal the raw weights"
    # the second validation ran on exactly the weights stored as EMA at the end of epoch 1
    validated = capture.validated[-1]
    assert all(torch.equal(validated[k], ema[k]) for k in ema)
    assert not all(torch.equal(validated[k], raw[k]) for k in raw)


def test_non_finite_loss_stops_naming_step_and_saves_last_good_state(synth_root, tmp_path) -> None:
    cfg = _cfg(synth_root, tmp_path, "trainer.max_epochs=3", "callbacks.ema=null")
    with open_dict(cfg):
        cfg.model.criterion.nan_at_call = 8  # batches 0..7 are fine, the 9th (epoch 1, batch 2) is NaN
    with pytest.raises(NonFiniteLossError, match=r"at optimizer step 8 \(epoch 1, batch 2\).*terms: loss_bbox"):
        train(cfg)
    saved = tmp_path / "outputs/runs/default/checkpoints/interrupted.ckpt"
    ckpt = torch.load(saved, weights_only=True)
    assert ckpt["global_step"] == 8
    assert all(bool(torch.isfinite(v).all()) for v in ckpt["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize("model", ["toy", "tiny"])
def test_resume_is_exact(synth_root, tmp_path, model) -> None:
    """2 epochs in one go == 1 epoch, stop, resume 1 epoch: weights, EMA, optimizer, schedule to 1e-6.
    The real tiny RT-DETR draws denoising noise every step, so this also checks the RNG restore."""
    common = ("callbacks.ema.decay=0.9", "callbacks.ema.ramp=0", "trainer.deterministic=true",
              "optim.schedule.warmup=3", "optim.schedule.milestones=[2]", "optim.schedule.milestone_unit=step",
              "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "optim.lr=1e-3")

    def cfg(out, *extra):
        if model == "toy":
            return _cfg(synth_root, out, *common, *extra)
        return compose_train(train_overrides(synth_root, out, "model=tiny", *common, *extra))

    full = train(cfg(tmp_path / "full", "trainer.max_epochs=2"))
    first = train(cfg(tmp_path / "split", "trainer.max_epochs=1"))
    resumed = train(cfg(tmp_path / "split", "trainer.max_epochs=2", "ckpt_path=auto"))
    assert first.steps == 3 and resumed.steps == full.steps == 6
    a = torch.load(full.last_checkpoint, weights_only=True)
    b = torch.load(resumed.last_checkpoint, weights_only=True)
    for key in ("state_dict", "current_model_state"):  # EMA and raw weights
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, rtol=0, atol=1e-6, msg=f"{key}.{name}")
    state_a, state_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    for index, entry in state_a.items():
        torch.testing.assert_close(state_b[index]["exp_avg"], entry["exp_avg"], rtol=0, atol=1e-6)
    assert a["lr_schedulers"][0]["last_epoch"] == b["lr_schedulers"][0]["last_epoch"] == 6
    assert a["averaging_state"]["n_averaged"] == b["averaging_state"]["n_averaged"]


def test_checkpoints_reach_the_bucket_and_auto_resumes_from_it(synth_root, tmp_path) -> None:
    """Default storage = a local bucket folder: checkpoints are pushed there; with the run folder gone,
    ckpt_path=auto continues from the bucket copy."""
    import shutil

    from neo.checkpoints.resume import newest_local_checkpoint, resolve_ckpt_path

    first = train(_cfg(synth_root, tmp_path, "trainer.max_epochs=1", "run_name=bucketed"))
    bucket_copy = tmp_path / "data/bucket/runs/bucketed/checkpoints/last.ckpt"
    assert bucket_copy.is_file()
    assert newest_local_checkpoint(first.run_dir / "checkpoints") == first.last_checkpoint
    shutil.rmtree(first.run_dir)
    resumed = train(_cfg(synth_root, tmp_path, "trainer.max_epochs=2", "run_name=bucketed", "ckpt_path=auto"))
    assert resumed.steps == 12  # 6 from the bucket checkpoint + 6 more
    assert resolve_ckpt_path(None, "x", tmp_path) is None
    assert resolve_ckpt_path("auto", "nothing-here", tmp_path / "none") is None
    with pytest.raises(FileNotFoundError, match="ckpt_path=last but .* does not exist"):
        resolve_ckpt_path("last", "x", tmp_path / "none")
