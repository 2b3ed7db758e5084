"""neo.data.settings: the DataModule's argument rules (torch-free) and loader defaults fitted to the machine."""

from __future__ import annotations

import inspect

import pytest

from neo.config_problems import SettingsError
from neo.data import datamodule
from neo.data.datamodule import NeoDataModule, loader_kwargs
from neo.data.settings import DATAMODULE_ARGS, data_problems

PATHS = {"root": "/d", "train_images": "/d/t", "train_annotations": "/d/t.json", "val_images": "/d/v",
         "val_annotations": "/d/v.json"}


def test_the_settings_know_every_datamodule_argument() -> None:
    assert tuple(inspect.signature(NeoDataModule.__init__).parameters)[1:] == DATAMODULE_ARGS


def test_the_datamodule_refuses_what_the_settings_refuse_naming_every_problem() -> None:
    args = {**PATHS, "resolution": "1920x1200", "batch_size": 0, "on_bad_image": "ignore", "min_box_size": -1}
    expected = data_problems(args)
    assert [p.split("=")[0] for p in expected] == [
        "data.resolution", "data.batch_size", "data.on_bad_image", "data.min_box_size"]
    with pytest.raises(SettingsError) as info:
        NeoDataModule(**args)
    assert info.value.problems == expected


def test_a_mistyped_data_key_gets_the_closest_one() -> None:
    assert data_problems({**PATHS, "batchsize": 8})[0].startswith(
        "data.batchsize is not a setting that neo reads, so it would be ignored. Fix: did you mean data.batch_size?")


def test_workers_are_clamped_to_the_cores_available_and_memory_is_pinned_only_with_cuda(monkeypatch, caplog) -> None:
    monkeypatch.setattr(datamodule, "available_cores", lambda: 2)
    monkeypatch.setattr(datamodule.torch.cuda, "is_available", lambda: False)
    with caplog.at_level("INFO", logger=datamodule.__name__):
        kwargs = loader_kwargs(8, True, True, 4)
    assert (kwargs["num_workers"], kwargs["pin_memory"], kwargs["persistent_workers"]) == (2, False, True)
    assert "data.num_workers=8 -> 2" in caplog.text
    monkeypatch.setattr(datamodule.torch.cuda, "is_available", lambda: True)
    assert loader_kwargs(1, True, False, None)["pin_memory"] is True
    assert "persistent_workers" not in loader_kwargs(0, True, True, 4)

