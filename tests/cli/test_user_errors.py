"""Every command prints a user error the same way: ``<command>: <value> <why>. Fix: <fix>.`` on stderr, nothing of
it on stdout, exit 1, no traceback. neo-eval and neo-predict answer a mistyped key with "did you mean", as
neo-train does; neo-train checks its configuration once per start. All in this process (``run_cli``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli, train_overrides
from tests.support.commands import flat


def _empty_checkpoint(tmp: Path) -> str:
    (tmp / "empty.ckpt").write_bytes(b"")
    return str(tmp / "empty.ckpt")


# (command, arguments for a working folder, the command's prefix, what the message must say)
CASES = [
    ("neo-train", lambda t: [f"paths.root_dir={t}", "optim.lr=0"], "neo-train",
     "optim.lr=0 must be a number in (0, 1]. Fix: use e.g. optim.lr="),
    ("neo-train", lambda t: [f"paths.root_dir={t}", "optim.lrr=1e-4"], "neo-train",
     "optim.lrr is not a key of this configuration. Did you mean optim.lr? Fix the name"),
    ("neo-train", lambda t: [f"paths.root_dir={t}", "storage=r2"], "neo-train",
     "storage.bucket is not set, but storage=r2 needs a bucket. Fix: storage.bucket=<name>"),
    ("neo-eval", lambda t: ["checkpoint=x.ckpt", "weightz=raw"], "neo-eval",
     "weightz is not a key of this configuration. Did you mean weights? Fix the name"),
    ("neo-eval", lambda t: ["checkpoint=x.ckpt", "+weightz=raw"], "neo-eval",
     "weightz is not a setting that neo reads, so it would be ignored. Fix: did you mean weights?"),
    ("neo-eval", lambda t: [f"checkpoint={_empty_checkpoint(t)}"], "neo-eval",
     "is empty (0 bytes; an interrupted save, copy or download). Fix: delete"),
    ("neo-predict", lambda t: ["checkpoint=x.ckpt", "source=y.jpg", "+score_treshold=0.2"], "neo-predict",
     "score_treshold is not a setting that neo reads, so it would be ignored. Fix: did you mean score_threshold?"),
    ("neo-predict", lambda t: ["source=y.jpg"], "neo-predict", "checkpoint= is required"),
    ("neo-export", lambda t: ["onnx", _empty_checkpoint(t)], "neo-export",
     "is empty (0 bytes; an interrupted save, copy or download). Fix: delete"),
    ("neo-data", lambda t: ["verify", str(t)], "neo-data verify",
     "holds no annotations/instances_*.json. Fix: pass the dataset root, or --annotations FILE --images DIR."),
    ("neo-weights", lambda t: ["--storage", "r2", "--bucket", "Bad_Bucket", "list"], "neo-weights list",
     "--bucket='Bad_Bucket' has the invalid bucket name 'Bad_Bucket'"),
    ("neo-bench", lambda t: ["nosuch"], "neo-bench", "nosuch is not a benchmark. Fix: choose one of data, model"),
]


@pytest.mark.parametrize(("command", "arguments", "prefix", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_user_error_is_one_paragraph_on_stderr_and_exit_1(tmp_path, command, arguments, prefix, expected):
    environment = {k: v for k, v in os.environ.items() if k != "NEO_BUCKET"}  # storage=r2 has no bucket here
    result = run_cli(command, *arguments(tmp_path), cwd=tmp_path, env=environment)
    err, out = flat(result.stderr), flat(result.stdout)
    assert result.returncode == 1, err[-3000:] + out[-3000:]
    assert err.startswith(f"{prefix}: ") and expected in err, err[-3000:]
    assert "Fix" in err.split(expected[:20], 1)[-1] or "Fix" in expected  # value and why first, then the fix
    assert expected not in out and "Traceback" not in err + out


def test_neo_eval_and_neo_predict_answer_a_typo_before_lightning_loads(tmp_path):
    """The unknown-key check is the first thing after composition: nothing is resolved or written."""
    for command, arguments in (("neo-eval", ["checkpoint=x.ckpt", "+splitt=test"]),
                               ("neo-predict", ["checkpoint=x.ckpt", "source=y.jpg", "+nms_iuo=0.5"])):
        result = run_cli(command, *arguments, cwd=tmp_path)
        assert result.returncode == 1 and "did you mean" in result.stderr, result.stderr[-3000:]
        assert ("split?" if command == "neo-eval" else "nms_iou?") in result.stderr
    assert not (tmp_path / "data").exists()  # no checkpoint was looked for in a bucket or cache


def test_neo_train_checks_its_configuration_once_per_start(synth_root, tmp_path, monkeypatch):
    """The composed config is checked once (in the run-folder guard, before Hydra writes anything); neo-train's own
    check and ``train()`` then see a checked config; the rules that ask the machine run once, in ``train()``."""
    from neo.config import check

    calls = {"config_errors": 0, "machine": 0}
    config_errors = check.config_errors

    def counted_config_errors(cfg, *, machine=True):
        calls["config_errors"] += 1
        return config_errors(cfg, machine=machine)

    def counted(rule):
        def wrapper(cfg):
            calls["machine"] += 1
            return rule(cfg)
        return wrapper

    monkeypatch.setattr(check, "config_errors", counted_config_errors)
    monkeypatch.setattr(check, "MACHINE_RULES", [counted(rule) for rule in check.MACHINE_RULES])
    result = run_cli("neo-train", *train_overrides(synth_root, tmp_path, "model=tiny", "debug=fast", "logger=none"),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert calls == {"config_errors": 1, "machine": len(check.MACHINE_RULES)}
