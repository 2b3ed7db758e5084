"""The one shape of a user's mistake (value, why, fix) and the one base class of the errors a user causes."""

from __future__ import annotations

import pytest

from neo.config_problems import SettingsError, UserError, problem, render, unknown_keys


def test_render_writes_value_why_fix_with_one_closing_mark_each():
    assert render("optim.lr=0", "must be a number in (0, 1]", "use e.g. optim.lr=1e-4") == \
        "optim.lr=0 must be a number in (0, 1]. Fix: use e.g. optim.lr=1e-4."
    assert render("a.ckpt", "is empty.", "delete it.") == "a.ckpt is empty. Fix: delete it."  # no ".."
    assert render("optim.lrr", "is unknown", "did you mean optim.lr?") == "optim.lrr is unknown. Fix: did you mean optim.lr?"
    assert problem("data.batch_size", 0, "must be >= 1", "use 4") == render("data.batch_size=0", "must be >= 1", "use 4")
    assert problem("size", "abc", "is not a size", "use '1080p'") == "size='abc' is not a size. Fix: use '1080p'."


def test_unknown_keys_at_the_top_level_have_no_leading_dot():
    [message] = unknown_keys("", {"weightz": "raw"}, ["weights", "split"])
    assert message.startswith("weightz is not a setting that neo reads") and "did you mean weights?" in message
    [message] = unknown_keys("optim", {"lrr": 1}, ["lr"])
    assert message.startswith("optim.lrr is not a setting") and "`+optim.lrr=...`" in message


def test_user_error_of_renders_one_problem():
    error = SettingsError.of("optim.lr=0", "must be positive", "use 1e-4")
    assert str(error) == "optim.lr=0 must be positive. Fix: use 1e-4."
    assert isinstance(error, UserError) and isinstance(error, ValueError)


def _user_errors():
    from neo.checkpoints.format import CheckpointError
    from neo.checkpoints.resume import WeightsUnavailableError
    from neo.config.check import ConfigError
    from neo.data.annotation_index import AnnotationFileError
    from neo.data.array_file import ArrayFileError
    from neo.data.coco import CorruptImageError, DatasetError
    from neo.data.download import DownloadError
    from neo.data.sizes import SizeError
    from neo.inference.evaluate import OptionError
    from neo.storage.errors import ResolveError, StorageAccessError, StorageConfigError
    from neo.sweeps.launch_check import LaunchError
    from neo.training.run_folder import BucketNotChecked, RunFolderTaken

    # each with the builtin base an existing ``except`` relies on
    return [(ConfigError, ValueError), (SettingsError, ValueError), (StorageConfigError, ValueError),
            (StorageAccessError, OSError), (ResolveError, FileNotFoundError), (CheckpointError, ValueError),
            (WeightsUnavailableError, FileNotFoundError), (RunFolderTaken, ValueError),
            (BucketNotChecked, ValueError), (DatasetError, ValueError), (AnnotationFileError, ValueError),
            (CorruptImageError, RuntimeError), (ArrayFileError, ValueError), (DownloadError, RuntimeError),
            (LaunchError, ValueError), (SizeError, ValueError), (OptionError, ValueError)]


@pytest.mark.parametrize("index", range(17))
def test_every_error_a_user_causes_is_a_user_error_and_keeps_its_builtin_base(index):
    errors = _user_errors()
    assert len(errors) == 17
    kind, builtin = errors[index]
    assert issubclass(kind, UserError) and issubclass(kind, builtin), kind.__mro__
