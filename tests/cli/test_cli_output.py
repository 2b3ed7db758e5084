"""What the commands print: brackets survive in messages, one start line instead of the config tree,
each log line once and through rich, no Lightning chatter or advertisements, no unactionable warnings."""

from __future__ import annotations

import logging
import warnings

import pytest
from rich.logging import RichHandler

from neo.cli.output import setup_console, start_line
from neo.cli.train import run as train_cli
from tests.conftest import train_overrides
from tests.training.helpers import compose_train


def test_a_bad_size_prints_its_brackets_and_exits_1(synth_root, tmp_path, capsys):
    cfg = compose_train(train_overrides(synth_root, tmp_path, "data.resolution=abc"))
    assert train_cli(cfg) == 1
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "data.resolution='abc' is not a size" in err and "is not a size" not in captured.out  # a user error: stderr
    assert "or a [height, width] list such as [1080, 1920]" in err  # rich markup would eat "[height, width]"
    assert "Traceback" not in err + captured.out


@pytest.mark.parametrize("print_config", [False, True])
def test_one_start_line_unless_the_tree_is_asked_for(synth_root, tmp_path, capsys, print_config):
    cfg = compose_train(train_overrides(synth_root, tmp_path, "model=tiny", "debug=fast", "logger=none",
                                        f"print_config={str(print_config).lower()}"))
    assert train_cli(cfg) == 0
    out = capsys.readouterr().out
    tree = "_target_: neo.data.datamodule.NeoDataModule" in out
    assert tree is print_config
    assert ("print_config=true prints the full config" in out) is not print_config
    assert len(out.splitlines()) < (400 if print_config else 40)


def test_start_line_names_overrides_and_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = start_line("neo-train", tmp_path / "outputs/runs/demo")
    assert line.startswith("neo-train (defaults) -> outputs/runs/demo") and "\n" not in line


@pytest.fixture
def clean_logging():
    """setup_console changes the root and Lightning loggers: restore them after the test."""
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    lightning = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
                 for name in ("lightning", "lightning.pytorch", "lightning.fabric")}
    filters = list(warnings.filters)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, (handlers, propagate) in lightning.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate
    warnings.filters[:] = filters


@pytest.mark.parametrize("use_rich", [True, False])
def test_setup_console_prints_each_record_once_without_lightning_noise(clean_logging, capsys, use_rich):
    """On a terminal through rich (above the progress bar); in a pipe the plain handler (no 80-column wraps)."""
    import sys

    root = logging.getLogger()
    root.handlers[:] = [logging.StreamHandler(sys.stdout)]  # what Hydra's job logging installs
    root.setLevel(logging.INFO)
    setup_console(lightning=True, use_rich=use_rich)
    assert [type(h) for h in root.handlers] == [RichHandler if use_rich else logging.StreamHandler]
    assert all(not logging.getLogger(n).handlers and logging.getLogger(n).propagate
               for n in ("lightning", "lightning.pytorch", "lightning.fabric"))
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero.info("GPU available: False, used: False")
    rank_zero.info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")
    rank_zero.warning("a real Lightning warning [keep me]")
    logging.getLogger("neo.storage.uploader").info("Uploaded runs/demo/checkpoints/best.ckpt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        setup_console(lightning=True, use_rich=use_rich)  # idempotent; its filters outrank the "default" action just set
        warnings.warn("The `srun` command is available on your system but is not used. HINT: ...", UserWarning,
                      stacklevel=1)
        warnings.warn("something the user should see", UserWarning, stacklevel=1)
    out = capsys.readouterr().out
    assert "GPU available" not in out and "Tip" not in out
    assert out.count("a real Lightning warning [keep me]") == 1
    assert out.count("Uploaded runs/demo/checkpoints/best.ckpt") == 1
    long_path = "/a/very/long/path/" + "x" * 120 + "/last.ckpt"
    logging.getLogger("neo.storage.uploader").info("Uploaded %s", long_path)
    assert (long_path in capsys.readouterr().out) is not use_rich  # a pipe keeps a long path on one line
    assert [str(w.message) for w in caught] == ["something the user should see"]
