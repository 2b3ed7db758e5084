"""Parameter groups by name (decay / lr) and the per-step lr schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neo.config.optim_settings import OptimSettings
from neo.config.schedule_settings import ScheduleSettings
from neo.config_problems import SettingsError
from neo.training.optim import ParamGroupSpec, build_adamw, build_param_groups
from neo.training.schedule import LrSchedule, build_scheduler, schedule_from_config


class Net(nn.Module):
    """A detector-shaped toy: conv backbone with BN, a transformer-ish head with LayerNorm and an embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1))
        self.backbone[0].weight.requires_grad_(False)  # a frozen stem
        self.query_embed = nn.Embedding(5, 4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 3)


def _groups(**kw):
    groups = build_param_groups(Net(), ParamGroupSpec(lr=1e-4, weight_decay=1e-4, **kw))
    return {g["name"]: g for g in groups}


def test_groups_by_name_decay_and_lr() -> None:
    groups = _groups(backbone_lr_mult=0.1)
    assert sorted(groups["backbone"]["param_names"]) == ["backbone.2.weight"]
    assert sorted(groups["backbone_no_decay"]["param_names"]) == ["backbone.1.bias", "backbone.1.weight",
                                                                   "backbone.2.bias"]
    assert sorted(groups["rest"]["param_names"]) == ["head.weight"]
    assert sorted(groups["rest_no_decay"]["param_names"]) == ["head.bias", "norm.bias", "norm.weight",
                                                               "query_embed.weight"]
    assert groups["backbone"]["lr"] == pytest.approx(1e-5) and groups["backbone_no_decay"]["lr"] == pytest.approx(1e-5)
    assert groups["rest"]["lr"] == 1e-4 and groups["rest_no_decay"]["lr"] == 1e-4
    assert groups["backbone"]["weight_decay"] == 1e-4 and groups["rest"]["weight_decay"] == 1e-4
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0 and groups["rest_no_decay"]["weight_decay"] == 0.0
    all_names = [n for g in groups.values() for n in g["param_names"]]
    assert "backbone.0.weight" not in all_names  # frozen
    assert len(all_names) == len(set(all_names)) == 9


def test_absolute_backbone_lr_wins_and_extra_no_decay_names() -> None:
    groups = _groups(backbone_lr=3e-6, backbone_lr_mult=0.5, no_decay_names=["head.weight"])
    assert groups["backbone"]["lr"] == 3e-6
    assert "rest" not in groups and "head.weight" in groups["rest_no_decay"]["param_names"]


def test_build_adamw_from_config_keeps_group_names() -> None:
    opt = build_adamw(Net(), {"lr": 2e-4, "weight_decay": 0.05, "backbone_lr_mult": 0.5, "betas": [0.9, 0.99]})
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["name"] for g in opt.param_groups] == ["backbone", "backbone_no_decay", "rest", "rest_no_decay"]
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-4, 2e-4, 2e-4]
    assert opt.defaults["betas"] == (0.9, 0.99) and not opt.defaults.get("fused")


def test_multistep_with_epoch_warmup() -> None:
    sched = schedule_from_config({"name": "multistep", "warmup": 2, "warmup_unit": "epoch", "warmup_start": 0.0,
                                  "milestones": [4, 6], "gamma": 0.1}, steps_per_epoch=10, total_steps=80)
    assert sched.warmup_steps == 20 and sched.milestones == (40, 60)
    assert sched(0) == pytest.approx(1 / 20) and sched(9) == pytest.approx(0.5) and sched(19) == pytest.approx(1.0)
    assert sched(39) == 1.0 and sched(40) == pytest.approx(0.1) and sched(60) == pytest.approx(0.01)


def test_cosine_and_flat_cosine() -> None:
    cos = LrSchedule("cosine", total_steps=110, warmup_steps=10, warmup_start=0.0, min_factor=0.0)
    assert cos(10) == pytest.approx(1.0) and cos(60) == pytest.approx(0.5) and cos(110) == pytest.approx(0.0)
    flat = schedule_from_config({"name": "flat_cosine", "warmup": 0, "flat_fraction": 0.5, "min_lr_ratio": 0.1},
                                steps_per_epoch=10, total_steps=100)
    assert flat(49) == 1.0 and flat(75) == pytest.approx(0.1 + 0.9 * 0.5) and flat(100) == pytest.approx(0.1)


def test_scheduler_steps_every_group_and_round_trips() -> None:
    net = Net()
    opt = build_adamw(net, {"lr": 1e-3, "backbone_lr": 1e-4})
    sched = build_scheduler(opt, LrSchedule("multistep", total_steps=10, warmup_steps=4, warmup_start=0.0,
                                            milestones=(6,)))
    lrs = []
    for _ in range(8):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx([2.5e-5, 2.5e-5, 2.5e-4, 2.5e-4])
    assert lrs[5][2] == pytest.approx(1e-3) and lrs[6][2] == pytest.approx(1e-4)
    state = sched.state_dict()
    fresh = build_scheduler(opt, LrSchedule("constant", total_steps=1))
    fresh.load_state_dict(state)
    assert fresh.lr_lambdas[0].milestones == (6,) and fresh.last_epoch == 8


def test_unknown_schedule_is_named() -> None:
    with pytest.raises(ValueError, match="optim.schedule.name='poly'"):
        schedule_from_config({"name": "poly"}, 10, 100)
    assert math.isfinite(LrSchedule("constant", 1)(0))


def test_warmup_is_counted_in_steps_unless_told_otherwise() -> None:
    """The official RT-DETR recipe warms up for 2000 optimizer steps: conf and code agree on the unit."""
    assert ScheduleSettings().warmup_unit == "step"
    sched = schedule_from_config({"name": "constant", "warmup": 2000}, steps_per_epoch=10, total_steps=5000)
    assert sched.warmup_steps == 2000


def test_schedule_settings_name_every_problem_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        ScheduleSettings(name="poly", warmup=-1, gamma=2.0, milestones=(50, 40))
    assert [p.split("=")[0] for p in info.value.problems] == [
        "optim.schedule.name", "optim.schedule.warmup", "optim.schedule.milestones", "optim.schedule.gamma"]


def test_a_mistyped_optim_key_is_refused_with_the_closest_key() -> None:
    with pytest.raises(SettingsError, match=r"optim.lrr is not a setting .* did you mean optim.lr\?"):
        build_adamw(Net(), {"lr": 1e-4, "lrr": 1e-3})
    assert OptimSettings.config_problems({"lr": 1e-4, "schedule": {"warmup_units": "step"}}) == [
        "optim.schedule.warmup_units is not a setting that neo reads, so it would be ignored. Fix: did you mean "
        "optim.schedule.warmup_unit? (`+optim.schedule.warmup_units=...` adds a new key; use `+` only for keys that "
        "are really new)."]


def test_bad_optimiser_values_are_refused_by_their_owner() -> None:
    with pytest.raises(SettingsError) as info:
        build_adamw(Net(), {"lr": 0, "betas": [0.9, 1.5], "weight_decay": -1})
    assert [p.split("=")[0] for p in info.value.problems] == ["optim.lr", "optim.weight_decay", "optim.betas"]
