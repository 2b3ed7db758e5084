"""neo-bench config: seconds from typing ``neo-train <bad override>`` to the error, per kind of mistake.

Runs the real console script as a user would (a fresh process each time, in a temporary folder) and
prints the median / min / max wall time until it exits with the error, the exit code, and whether torch
was imported on the way (one extra run with ``python -X importtime``). Goal: about a second.

    neo-bench config                 # 5 runs of each case
    neo-bench config --runs 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# case name -> overrides (each exits 1 with neo's or Hydra's one-paragraph answer; --check exits 0)
CASES: dict[str, list[str]] = {
    "bad value (optim.lr=abc)": ["optim.lr=abc"],
    "non-16:9 size": ["data.resolution=1920x1200"],
    "mistyped key (optim.lrr)": ["optim.lrr=1e-3"],
    "missing dataset": ["data=coco", "data.root=/nowhere"],
    "--check, valid config": ["--check"],
}
HEAVY = ("torch", "lightning", "timm")


def _command(overrides: list[str], workdir: Path) -> list[str]:
    script = shutil.which("neo-train") or str(Path(sys.executable).parent / "neo-train")
    return [sys.executable, script, f"paths.root_dir={workdir}", *overrides]


def time_case(overrides: list[str], runs: int, workdir: Path) -> tuple[list[float], int]:
    """Wall seconds of each run and the last exit code."""
    seconds, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(_command(overrides, workdir), cwd=workdir, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
        code = result.returncode
    return seconds, code


def heavy_imports(overrides: list[str], workdir: Path) -> list[str]:
    """Which of torch / lightning / timm the process imported before answering."""
    command = _command(overrides, workdir)
    result = subprocess.run([command[0], "-X", "importtime", *command[1:]], cwd=workdir, capture_output=True, text=True)
    names = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neo-bench config", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case (median reported)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="neo-bench-config-") as tmp:
        workdir = Path(tmp)
        print(f"{'case':<28} {'median s':>9} {'min s':>7} {'max s':>7} {'exit':>5}  torch/lightning/timm loaded")
        for name, overrides in CASES.items():
            seconds, code = time_case(overrides, args.runs, workdir)
            heavy = heavy_imports(overrides, workdir)
            print(f"{name:<28} {statistics.median(seconds):>9.2f} {min(seconds):>7.2f} {max(seconds):>7.2f} "
                  f"{code:>5}  {', '.join(heavy) or 'none'}", flush=True)
    print("goal: the error within about 1.5 s (figures depend on how busy the machine is)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
