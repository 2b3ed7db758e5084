"""One checkpoint reader for every command: each command x each bad file -> exit 1, one paragraph naming the
file and the fix, no traceback, the file left as it was and nothing written.

Commands run in-process through their CLI entry points (neo-train's ``run``, neo-eval's and neo-predict's
``run`` on a Hydra-composed config, neo-export's and neo-weights' ``main``); a few real subprocesses at the end.
Resuming into another preset is proved through the console script in tests/faults/test_training_faults.py.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import cv2
import lightning
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from neo.checkpoints.format import CheckpointError, load_file, read_neo
from neo.checkpoints.official import default_optim_config
from neo.models.rtdetr import load_preset_config
from neo.training.module import RTDETRModule
from tests.conftest import train_overrides
from tests.faults.conftest import flat, neo, output
from tests.official_checkpoints import REFERENCE, official_state_dict, save_official
from tests.training.helpers import compose_train

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference key lists not available")
COMMANDS = ("resume", "pretrained", "eval", "predict", "export", "import")
# bad kind -> commands it applies to (an official file is what `import` and `pretrained=` want; a neo one is
# what every command but `import` wants)
KINDS = {
    "missing": COMMANDS,
    "empty": COMMANDS,
    "truncated": COMMANDS,
    "not_a_checkpoint": COMMANDS,
    "pickled_objects": COMMANDS,
    "another_preset": ("pretrained", "eval", "predict", "export", "import"),
    "official_not_neo": ("resume", "eval", "predict", "export"),
    "neo_not_official": ("import",),
}
# what the message must say, by kind
SAYS = {
    "missing": ("not found", "does not exist", "is not a file"),
    "empty": "is empty (0 bytes",
    "truncated": "probably truncated",
    "not_a_checkpoint": "is not a PyTorch checkpoint",
    "pickled_objects": "--trust-pickle",
    "another_preset": ("does not fit the model its own config describes (model=rtdetr_r18)",  # eval/predict/export
                       "Fix: use model=tiny", "does not load into model=rtdetr_r34"),  # pretrained=, import
    "official_not_neo": "is an official RT-DETR v2 checkpoint (rtdetr_r18, 80 classes), not a neo checkpoint",
    "neo_not_official": "is already a neo checkpoint",
}


def _tiny_module(num_classes: int = 3) -> RTDETRModule:
    model = OmegaConf.to_container(load_preset_config("tiny", num_classes), resolve=True)
    return RTDETRModule(model=model, optim=default_optim_config(), class_names=[f"c{i}" for i in range(num_classes)],
                        label_to_category_id=list(range(1, num_classes + 1)),
                        run_config={"model": model, "data": {"eval_size": "320x180"}})


def _save_neo(path: Path, module: RTDETRModule, **changes) -> Path:
    content = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0,
               "global_step": 4, "pytorch-lightning_version": lightning.__version__, **changes}
    torch.save(content, path)
    return path


class _Pickled:  # stands for the arbitrary objects some training scripts pickle into checkpoints
    pass


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One file of each kind (plus a good neo and a good official file), made once."""
    root = tmp_path_factory.mktemp("bad-files")
    torch.manual_seed(0)
    good = _save_neo(root / "good.ckpt", _tiny_module())
    official = save_official(root / "rtdetrv2_r18vd.pth", model=official_state_dict("rtdetrv2_r18vd"))
    data = good.read_bytes()
    (root / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (root / "empty.ckpt").write_bytes(b"")
    (root / "notes.ckpt").write_text("epoch 3, AP 0.41 - see the run folder\n")
    torch.save({"state_dict": _tiny_module().state_dict(), "args": _Pickled()}, root / "pickled.ckpt")
    r18_config = OmegaConf.to_container(load_preset_config("rtdetr_r18", 3), resolve=True)
    inconsistent = _save_neo(root / "assembled.ckpt", _tiny_module(),
                             hyper_parameters={**dict(_tiny_module().hparams), "model": r18_config})
    return {"good": good, "official": official, "missing": root / "gone/best.ckpt", "empty": root / "empty.ckpt",
            "truncated": root / "truncated.ckpt", "not_a_checkpoint": root / "notes.ckpt",
            "pickled_objects": root / "pickled.ckpt", "inconsistent": inconsistent}


def _bad_file(files: dict[str, Path], kind: str, command: str) -> Path:
    if kind == "another_preset":
        return {"pretrained": files["good"], "import": files["official"]}.get(command, files["inconsistent"])
    if kind == "official_not_neo":
        return files["official"]
    if kind == "neo_not_official":
        return files["good"]
    return files[kind]


def _compose(config: str, overrides: list[str]):
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config, overrides=overrides)


def _run(command: str, bad: Path, kind: str, synth_root: Path, tmp_path: Path) -> int:
    """Run ``command`` on ``bad`` in-process as a user would type it; returns the exit code."""
    if command in ("resume", "pretrained"):
        from neo.cli.train import run

        extra = ["model=rtdetr_r18"] if kind == "another_preset" else ["model=tiny"]
        option = "ckpt_path" if command == "resume" else "pretrained"
        cfg = compose_train(train_overrides(synth_root, tmp_path, *extra, "logger=none", "sync_checkpoints=false",
                                            f"{option}={bad}"))
        return run(cfg)
    if command in ("eval", "predict"):
        from neo.cli.eval import run as run_eval
        from neo.cli.predict import run as run_predict

        image = tmp_path / "street.jpg"
        cv2.imwrite(str(image), np.full((180, 320, 3), 90, np.uint8))
        extra = [f"source={image}"] if command == "predict" else []
        cfg = _compose(command, [f"checkpoint={bad}", f"paths.root_dir={tmp_path}", *extra])
        return (run_eval if command == "eval" else run_predict)(cfg)
    if command == "export":
        from neo.cli.export import main

        return main(["onnx", str(bad), "--out", str(tmp_path / "model.onnx")])
    from neo.cli.weights import main

    return main(["--bucket", "", "--cache-dir", str(tmp_path / "cache"), "import", str(bad), "--out",
                 str(tmp_path / "imported.ckpt")] + (["--preset", "rtdetr_r34"] if kind == "another_preset" else []))


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


MATRIX = [(command, kind) for kind, commands in KINDS.items() for command in commands]


@pytest.mark.parametrize(("command", "kind"), MATRIX, ids=[f"{c}-{k}" for c, k in MATRIX])
def test_every_command_names_a_bad_checkpoint_in_one_paragraph(command, kind, files, synth_root, tmp_path, capsys,
                                                               monkeypatch) -> None:
    monkeypatch.delenv("NEO_BUCKET", raising=False)  # no bucket (an empty one is refused)
    monkeypatch.setenv("NEO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "1000")  # rich would wrap neo-train's paragraph at 80 columns
    bad = _bad_file(files, kind, command)
    before = _digest(bad)
    code = _run(command, bad, kind, synth_root, tmp_path)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 1, text[-3000:]
    assert "Traceback" not in text and "None=" not in text, text[-3000:]
    message = next(line for line in text.splitlines() if str(bad) in line)  # the file is named ...
    says = SAYS[kind] if isinstance(SAYS[kind], tuple) else (SAYS[kind],)
    assert any(what in flat(text) for what in says), text[-3000:]  # ... with what is wrong
    if kind not in ("missing", "another_preset"):
        assert "Fix:" in message and "\n" not in message, text[-3000:]  # ... and the fix, in one paragraph
    assert _digest(bad) == before  # the file is left exactly as it was
    assert not (tmp_path / "imported.ckpt").exists() and not (tmp_path / "model.onnx").exists()
    assert not list(tmp_path.rglob("*.ckpt")), list(tmp_path.rglob("*.ckpt"))  # no checkpoint written


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_eval_and_predict_without_checkpoint_say_what_is_needed(command, tmp_path, capsys) -> None:
    from neo.cli.eval import run as run_eval
    from neo.cli.predict import run as run_predict

    cfg = _compose(command, [f"paths.root_dir={tmp_path}"])
    assert (run_eval if command == "eval" else run_predict)(cfg) == 1
    err = capsys.readouterr().err
    assert f"neo-{command}: checkpoint= " in err and "required" in err and f"Example: neo-{command} checkpoint=" in err
    assert "MissingMandatoryValue" not in err and len(err.strip().splitlines()) == 1
    if command == "predict":
        assert "checkpoint= and source= are required" in err


def test_the_weights_choice_is_made_once(tmp_path: Path) -> None:
    """ema -> state_dict; raw -> current_model_state when the run had EMA; no EMA -> the raw weights, said so."""
    torch.manual_seed(0)
    module = _tiny_module()
    raw = {k: v + 1 if v.is_floating_point() else v for k, v in module.state_dict().items()}
    with_ema = read_neo(_save_neo(tmp_path / "ema.ckpt", module, current_model_state=raw))
    without = read_neo(_save_neo(tmp_path / "plain.ckpt", module))
    key = "net.decoder.enc_score_head.bias"
    assert with_ema.weights("ema")[1] == "ema" and torch.equal(with_ema.weights("ema")[0][key], module.state_dict()[key])
    assert with_ema.weights("raw")[1] == "raw" and torch.equal(with_ema.weights("raw")[0][key], raw[key])
    assert without.weights("ema")[1] == "raw" and without.weights("raw")[1] == "raw"
    with pytest.raises(CheckpointError, match=r"weights='best' is unknown"):
        with_ema.weights("best")


def test_pickled_objects_load_only_when_trusted(tmp_path: Path) -> None:
    path = tmp_path / "x.pth"
    torch.save({"model": {"a": torch.zeros(2)}, "args": _Pickled()}, path)
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        load_file(path, key="import")
    assert set(load_file(path, key="import", trust_pickle=True)) == {"model", "args"}
    assert pickle.dumps  # the trusted load really unpickled an object


def test_eval_subprocess_on_a_truncated_checkpoint(files: dict[str, Path], tmp_path: Path) -> None:
    """The issue's report, as typed: neo-eval on a truncated file ended in a PytorchStreamReader traceback."""
    result = neo("neo-eval", f"checkpoint={files['truncated']}", f"paths.root_dir={tmp_path}", cwd=tmp_path)
    text = output(result)
    assert result.returncode == 1, text[-3000:]
    assert "Traceback" not in text and "PytorchStreamReader" not in flat(text).split("(")[0]
    assert f"neo-eval: checkpoint='{files['truncated']}': {files['truncated']} is not a readable checkpoint" in text


def test_predict_subprocess_without_checkpoint(tmp_path: Path) -> None:
    result = neo("neo-predict", "source=photo.jpg", cwd=tmp_path)
    text = output(result)
    assert result.returncode == 1 and "Traceback" not in text and "MissingMandatoryValue" not in text, text[-3000:]
    assert "neo-predict: checkpoint= is required" in text


@pytest.mark.parametrize("value", [None, "", " "])
def test_no_ckpt_path_starts_fresh(value, tmp_path: Path) -> None:
    from neo.checkpoints.resume import resolve_ckpt_path

    assert resolve_ckpt_path(value, "run", tmp_path / "checkpoints") is None
