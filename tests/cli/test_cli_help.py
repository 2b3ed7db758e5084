"""Every command's --help starts with the README's examples (short, not Hydra's 280-line config dump)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neo.cli.bench import main as neo_bench
from neo.cli.data import build_parser as data_parser
from tests.support.commands import run_command

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _readme_commands() -> set[str]:
    """Every command line of the README's bash blocks, comments stripped and spaces collapsed."""
    lines = set()
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = " ".join(line.split("#")[0].split())
            if line:
                lines.add(line)
    return lines


def _in_readme(command_line: str) -> bool:
    return command_line in _readme_commands() or f"`{command_line}`" in README


def _examples(text: str, command: str) -> list[str]:
    return [" ".join(line.split("#")[0].split()) for line in text.splitlines()
            if line.strip().startswith(command + " ")]


@pytest.mark.parametrize("command", ["neo-train", "neo-eval", "neo-predict"])
def test_hydra_commands_help_starts_with_readme_examples(command):
    result = run_command(command, "--help", cwd=Path.cwd())
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{command}: ") and lines[2].startswith("Examples")
    assert len(lines) < 60  # not the whole config (that is --cfg job)
    examples = _examples(result.stdout, command)
    assert len(examples) >= 3
    in_readme = [e for e in examples if _in_readme(e)]
    assert in_readme and examples[0] in in_readme, (examples, "the first example must be the README's")
    assert "--cfg job" in result.stdout


def test_data_and_bench_help_start_with_readme_examples(capsys):
    text = data_parser().format_help()
    assert [e for e in _examples(text, "neo-data") if _in_readme(e)]
    assert neo_bench(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("neo-bench: ")
    assert all(_in_readme(e) for e in _examples(out, "neo-bench"))


@pytest.mark.parametrize(("command", "first_line"), [("neo-data", "usage: neo-data "), ("neo-bench", "neo-bench: ")])
def test_data_and_bench_console_scripts_run_as_installed(command: str, first_line: str, tmp_path) -> None:
    """The one subprocess of each of these commands (every other test calls their main() in-process)."""
    result = run_command(command, "--help", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.splitlines()[0].startswith(first_line) and "Traceback" not in result.stderr
    assert [e for e in _examples(result.stdout, command) if _in_readme(e)]
