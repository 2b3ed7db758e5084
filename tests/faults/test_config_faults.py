"""Config faults: invalid overrides are answered by a one-paragraph error naming the key, the value and the fix.

tests/training/test_config_tree.py checks the bad overrides of every owner in-process; this file adds the
storage, data-policy and weights keys, the CLI itself (exit code 1, the message, no traceback, nothing
written, answered before torch loads), ``--check``, and the overrides Hydra answers before neo runs (an
unknown preset, a malformed override, a mistyped key with "did you mean").
The bucket rules themselves (schemes, retry and timeout values) belong to ``StorageSettings`` and are
tested with it (tests/storage, tests/faults/test_storage_faults.py); here only that neo-train reports them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from neo.config.check import ConfigError, check_config
from tests.conftest import run_cli, train_overrides
from tests.faults.conftest import flat, neo, output
from tests.training.helpers import compose_train

NEW_BAD_OVERRIDES = [
    ("+storage.endpoint=http://x", "storage: storage has unknown key(s) ['endpoint']"),
    ("data.on_bad_image=ignore", "data.on_bad_image='ignore' is not a policy"),
    ("data.min_box_size=-1", "data.min_box_size=-1 must be a number >= 0"),
    ("pretrained=/nonexistent/detector.pth", "pretrained='/nonexistent/detector.pth' is not a file"),
    ("data.resolution=banana", "data.resolution='banana' is not a size. Fix: write a name (360p"),
    ("data.resolution=1920x1200", "data.resolution='1920x1200' is (height=1200, width=1920) = 1920x1200, which is not"),
    ("data.batch_size=four", "data.batch_size='four' must be an integer >= 1"),
    ("optim.lr=fast", "optim.lr='fast' must be a number in (0, 1]"),
    ("trainer.max_epochs=1.5", "trainer.max_epochs=1.5 must be an integer >= 1"),
    ("trainer.accumulate_grad_batches=-2", "trainer.accumulate_grad_batches=-2 must be an integer >= 1"),
    ("trainer.precision=bf17", "trainer.precision='bf17' is not a Lightning precision"),
    ("data.num_workers=-3", "data.num_workers=-3 must be an integer >= 0"),
    ("ckpt_path=./runs/typo/last.ckpt", "ckpt_path='./runs/typo/last.ckpt' does not exist"),
]


@pytest.mark.parametrize("overrides,expected", NEW_BAD_OVERRIDES, ids=[o for o, _ in NEW_BAD_OVERRIDES])
def test_bad_override_is_one_paragraph_naming_key_value_and_fix(tmp_path, overrides, expected):
    with pytest.raises(ConfigError) as info:
        check_config(compose_train([f"paths.root_dir={tmp_path}", *overrides.split()]))
    problems = str(info.value).splitlines()[1:]
    assert len(problems) == 1, str(info.value)  # this override, and only it, is reported
    assert expected in problems[0], problems
    assert "Fix:" in problems[0] or "Nearest valid 16:9 size" in problems[0] or "valid keys" in problems[0], problems


def test_a_secret_in_storage_options_is_refused_without_echoing_it(tmp_path):
    marker = "hunter2-do-not-print-me"
    with pytest.raises(ConfigError) as info:
        check_config(compose_train([f"paths.root_dir={tmp_path}", f"+storage.storage_options.secret={marker}"]))
    assert "storage.storage_options holds secret option(s) ['secret']" in str(info.value)
    assert "environment" in str(info.value) and marker not in str(info.value)


def test_neo_train_reports_every_bad_override_at_once_and_no_traceback(synth_root, tmp_path):
    """Typed twice: the same answer both times, and no checkpoint or summary.json written."""
    bad = ["data.resolution=1920x1200", "optim.lr=0", "data.batch_size=0", "trainer.accumulate_grad_batches=0",
           "trainer.precision=16-mixd", "+storage.endpoint=http://x", "data.on_bad_image=ignore",
           "ckpt_path=/nowhere/last.ckpt", "data.train_annotations=/nowhere/instances_train.json",
           "+optim.lrr=1e-3"]
    texts = []
    for _ in range(2):
        result = neo("neo-train", *train_overrides(synth_root, tmp_path, *bad), cwd=tmp_path)
        text = flat(output(result))
        assert result.returncode == 1, text[-3000:]
        texts.append(text)
    assert texts[0] == texts[1]
    text = texts[0]
    assert "Traceback" not in text
    assert f"neo-train: invalid configuration ({len(bad)} problems):" in text
    for expected in ("data.resolution='1920x1200' is (height=1200, width=1920) = 1920x1200, which is not 16:9",
                     "optim.lr=0 must be", "data.batch_size=0 must be",
                     "trainer.accumulate_grad_batches=0 must be", "trainer.precision='16-mixd' is not a Lightning",
                     "storage: storage has unknown key(s) ['endpoint']",
                     "data.on_bad_image='ignore' is not a policy", "ckpt_path='/nowhere/last.ckpt' does not exist",
                     "data.train_annotations='/nowhere/instances_train.json' does not exist. Fix: point it at your "
                     "COCO-format dataset", "optim.lrr is not a setting that neo reads, so it would be ignored. "
                     "Fix: did you mean optim.lr?"):
        assert expected in text, expected
    assert text.count("Fix:") + text.count("Nearest valid 16:9 size") + text.count("valid keys") >= len(bad)
    assert list(tmp_path.rglob("*.ckpt")) == [] and list(tmp_path.rglob("summary.json")) == []


def test_neo_train_check_validates_without_training(synth_root, tmp_path):
    ok = neo("neo-train", "--check", *train_overrides(synth_root, tmp_path), cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, output(ok)[-3000:]
    assert "neo-train: configuration OK (nothing was run; drop --check to train)." in ok.stdout
    bad = run_cli("neo-train", "--check", *train_overrides(synth_root, tmp_path, "optim.lr=abc"), cwd=tmp_path)
    text = flat(output(bad))
    assert bad.returncode == 1 and "Traceback" not in text, text[-3000:]
    assert "optim.lr='abc' must be a number in (0, 1]" in text and "configuration OK" not in text
    assert list(tmp_path.rglob("*.ckpt")) == [] and list(tmp_path.rglob("summary.json")) == []
    from neo.bench.config import heavy_imports  # the answer comes before torch, Lightning or timm load

    rest = [o for o in train_overrides(synth_root, tmp_path, "optim.lr=abc") if not o.startswith("paths.root_dir=")]
    assert heavy_imports(rest, tmp_path) == []


def test_neo_train_unknown_storage_option_is_not_silently_dropped(tmp_path):
    """storage is an optional Hydra group: Hydra itself skips storage=gcs, which would run without a bucket."""
    result = run_cli("neo-train", f"paths.root_dir={tmp_path}", "storage=gcs", "print_config=false", cwd=tmp_path)
    text = flat(output(result))
    assert result.returncode == 1 and "Traceback" not in text, text[-3000:]
    assert ("storage='gcs' is not a storage option, so the run would have no bucket. Fix: use one of b2, default, "
            "local, r2, s3") in text, text[-3000:]
    assert not (tmp_path / "data").exists()  # refused before the default synthetic dataset was generated


HYDRA_ANSWERED = [
    ("model=rtdetr_r19", "Could not find 'model/rtdetr_r19'", "rtdetr_r18"),  # unknown preset: lists the real ones
    ("optim.lrr=1e-4", "optim.lrr is not a key of this configuration. Did you mean optim.lr?",  # typo in a key
     "write +optim.lrr=... only to add a genuinely new key"),
    ("trainer.max_epoch=3", "trainer.max_epoch is not a key of this configuration. Did you mean trainer.max_epochs?",
     "Fix the name"),
    ("data.batch_size", "Error parsing override 'data.batch_size'", "missing EQUAL"),       # no value
]


@pytest.mark.parametrize("override,expected,hint", HYDRA_ANSWERED, ids=[o for o, *_ in HYDRA_ANSWERED])
def test_overrides_hydra_refuses_exit_1_without_traceback(tmp_path, override, expected, hint):
    result = run_cli("neo-train", f"paths.root_dir={tmp_path}", override, cwd=tmp_path)  # a process: the tests above
    text = output(result)
    assert result.returncode == 1, text[-3000:]
    assert "Traceback" not in text and expected in text and hint in text, text[-3000:]
    assert not (Path(tmp_path) / "outputs").exists()
