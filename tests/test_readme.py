"""Every neo command the README shows is a valid command.

Hydra commands (neo-train, neo-eval, neo-predict) are composed with their overrides and fully resolved
(a sweep override of a `-m` command contributes its first value); argparse commands (neo-data,
neo-weights, neo-bench, neo-export) are parsed by the command's own parser. What the commands *do* is
proven by the tests of each package; this test keeps the README from drifting away from the code.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

README = Path(__file__).resolve().parents[1] / "README.md"

HYDRA_COMMANDS = {"neo-train": "train", "neo-eval": "eval", "neo-predict": "predict"}
ARGPARSE_COMMANDS = {"neo-data": "neo.cli.data", "neo-weights": "neo.cli.weights", "neo-export": "neo.cli.export"}
BENCH_MODULES = {"data": "neo.bench.data", "model": "neo.bench.model", "train": "neo.bench.train",
                 "storage": "neo.bench.storage", "scale": "neo.bench.scale",
                 "config": "neo.bench.config", "guard": "neo.bench.guard", "frozen-norm": "neo.bench.frozen_norm"}


def readme_commands() -> list[list[str]]:
    """Argument lists of every `neo-*` line inside the README's ```bash blocks (comments stripped)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0].startswith("neo-"):
                commands.append(words)
    return commands


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    """`a=1,2 b=x` -> `a=1 b=x`: one point of a multirun grid (Optuna search spaces stay as they are)."""
    out = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override() and not override.is_hydra_override():
            value = next(iter(override.sweep_string_iterator()))
            out.append(f"{override.get_key_element()}={value}")
        else:
            out.append(override.input_line)
    return out


def test_readme_lists_the_main_commands() -> None:
    names = {words[0] for words in readme_commands()}
    assert {"neo-train", "neo-eval", "neo-predict", "neo-weights", "neo-data", "neo-bench"} <= names


@pytest.mark.parametrize("words", readme_commands(), ids=lambda words: " ".join(words)[:90])
def test_readme_command_is_valid(words: list[str], tmp_path: Path) -> None:
    command, args = words[0], words[1:]
    if command in HYDRA_COMMANDS:
        overrides = [a for a in args if a not in ("-m", "--multirun", "--cfg", "job", "--check")]
        if "-m" in args or "--multirun" in args:
            overrides = first_of_each_sweep(overrides)
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="conf", version_base="1.3"):
            cfg = compose(HYDRA_COMMANDS[command], overrides=[*overrides, f"paths.root_dir={tmp_path}"])
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        assert resolved["paths"]["root_dir"] == str(tmp_path)
    elif command == "neo-bench":
        assert args and args[0] in BENCH_MODULES, f"unknown benchmark in README: {args}"
        importlib.import_module(BENCH_MODULES[args[0]]).build_parser().parse_args(args[1:])
    elif command in ARGPARSE_COMMANDS:
        importlib.import_module(ARGPARSE_COMMANDS[command]).build_parser().parse_args(args)
    else:
        pytest.fail(f"README shows {command}, which is not a neo console script")


def test_every_test_the_readme_cites_exists() -> None:
    """The Guarantees table names its proofs as `file.py::test_name`; each must be a test in tests/."""
    tests_dir = README.parent / "tests"
    cited = re.findall(r"([\w/]+\.py)::(\w+)", README.read_text())
    assert len(cited) >= 20
    for file_name, test_name in cited:
        matches = [p for p in tests_dir.rglob(Path(file_name).name) if str(p).endswith(file_name)]
        assert matches, f"README cites {file_name}, which is not under tests/"
        assert any(re.search(rf"^def {test_name}\(", p.read_text(), flags=re.M) for p in matches), (
            f"README cites {file_name}::{test_name}, which does not exist")
