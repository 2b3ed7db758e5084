"""The wheel ships every config and recipe, and `neo-train --cfg job` works from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (path,) = out.glob("neo-*.whl")
    return path


def _yaml_files_in_repo() -> set[str]:
    """Every YAML the package must ship, as wheel member names (`conf/...`)."""
    names = {p.relative_to(REPO).as_posix() for p in (REPO / "conf").rglob("*.yaml")}
    names |= {f"conf/experiment/{p.name}" for p in (REPO / "experiments").glob("*.yaml")}
    return names


def test_wheel_contains_every_config_and_recipe(wheel: Path) -> None:
    expected = _yaml_files_in_repo()
    assert "conf/train.yaml" in expected and "conf/experiment/cpu_demo.yaml" in expected
    assert "conf/experiment/rtdetr_r50_1080p.yaml" in expected
    members = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(expected - members)
    assert not missing, f"YAML files missing from the wheel: {missing}"


def test_neo_train_cfg_job_from_wheel_in_foreign_cwd(wheel: Path, tmp_path: Path) -> None:
    """Install the wheel's code into a private folder and compose the job from an unrelated cwd."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True, text=True,
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import sys, neo, conf; from neo.cli.train import main; sys.argv = ['neo-train', '--cfg', 'job']; main()"
    for overrides in ([], ["experiment=rtdetr_r50_1080p"]):
        result = subprocess.run(
            [sys.executable, "-c", code.replace("'job']", "'job'" + "".join(f", {o!r}" for o in overrides) + "]")],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "model:" in result.stdout and "data:" in result.stdout
    origin = subprocess.run(
        [sys.executable, "-c", "import neo, conf; print(neo.__file__); print(list(conf.__path__)[0])"],
        cwd=workdir, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert all(p.startswith(str(target)) for p in origin), origin
