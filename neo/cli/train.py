"""`neo-train`: compose the config (pkg://conf, train.yaml), train, print the summary table.

    neo-train experiment=cpu_demo              # the demo `make train` runs
    neo-train experiment=cpu_demo debug=fast   # one batch through everything
    neo-train experiment=cpu_demo ckpt_path=auto
Exit codes: 0 finished, 1 failed (bad config, non-finite loss, error), 130 interrupted (Ctrl-C / SIGTERM;
an interrupt checkpoint is written and named).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, open_dict


def _use_hydra_job_dir(cfg: DictConfig) -> None:
    """In a -m sweep each job writes to Hydra's job folder (run_dir follows it)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        with open_dict(cfg):
            cfg.paths.run_dir = HydraConfig.get().runtime.output_dir


def run(cfg: DictConfig) -> int:
    """Train from a composed config; returns the process exit code (used by main and by tests)."""
    from rich.console import Console

    from neo.training.config_check import ConfigError
    from neo.training.module import NonFiniteLossError
    from neo.training.report import print_summary
    from neo.training.run import train

    console = Console(stderr=False)
    try:
        summary = train(cfg)
    except ConfigError as exc:
        console.print(f"[bold red]neo-train:[/bold red] {exc}", highlight=False)
        return 1
    except NonFiniteLossError as exc:
        console.print(f"[bold red]neo-train stopped:[/bold red] {exc}", highlight=False)
        _print_interrupt_checkpoint(console, cfg)
        return 1
    except Exception:
        console.print_exception(max_frames=8)
        console.print("[bold red]neo-train failed[/bold red] (traceback above).", highlight=False)
        _print_interrupt_checkpoint(console, cfg)
        return 1
    print_summary(summary, console)
    if summary.status != "finished":
        _print_interrupt_checkpoint(console, cfg)
        return 130
    return 0


def _print_interrupt_checkpoint(console, cfg: DictConfig) -> None:
    from pathlib import Path

    path = Path(cfg.paths.checkpoint_dir) / "interrupted.ckpt"
    last = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    if path.is_file():
        console.print(f"Last good state saved to {path}. Continue with: neo-train <same overrides> ckpt_path=auto",
                      soft_wrap=True)
    elif last.is_file():
        console.print(f"Last regular checkpoint: {last}. Continue with: neo-train <same overrides> ckpt_path=auto",
                      soft_wrap=True)


def quiet_duplicate_logs() -> None:
    """Lightning prints through its own handler; stop the same records reaching Hydra's console handler too."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).propagate = False


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    quiet_duplicate_logs()
    _use_hydra_job_dir(cfg)
    code = run(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    """Console-script entry point."""
    _hydra_main()


if __name__ == "__main__":
    main()
