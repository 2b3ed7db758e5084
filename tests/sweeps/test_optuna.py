"""hparams_search=optuna: the config composes, a 2-trial study runs through the real CLI with debug=fast,
its sqlite storage lives in the sweep folder, and running the command again continues the study."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from tests.sweeps.helpers import output, read_json, run_cli, write_tiny_experiment


def test_optuna_sqlite_storage_works_with_the_installed_sqlalchemy(tmp_path: Path) -> None:
    """optuna 2.10 (pinned by hydra-optuna-sweeper 1.3) loses its schema stamp with SQLAlchemy 2 (pyproject pins 1.4)."""
    import optuna

    url = f"sqlite:///{tmp_path}/study.db"
    for _ in range(2):  # the second create_study loads the stored study
        study = optuna.create_study(storage=url, study_name="s", direction="maximize", load_if_exists=True)
        study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 2


def test_optuna_config_composes() -> None:
    import neo.cli.train  # noqa: F401 - registers the neo.dirname resolver used by hydra.sweep.subdir

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=optuna", "paths.root_dir=/r"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.direction == "maximize" and sweeper.study_name == cfg.run_name
    assert sweeper.storage == f"sqlite:///{cfg.hydra.sweep.dir}/optuna.db"
    assert sweeper.params["optim.lr"].startswith("tag(log, interval(")
    assert sweeper.params["data.resolution"].startswith("choice(")
    assert sweeper.params["model.net.decoder.num_layers"].startswith("choice(")
    assert cfg.hydra.callbacks.sweep_summary.exit_on_failure is False


@pytest.mark.timeout(300)
def test_two_trial_study_runs_and_a_rerun_continues_it(synth_root: Path, tmp_path: Path) -> None:
    import optuna

    selected = write_tiny_experiment(tmp_path / "conf", synth_root, name="tiny_optuna")
    command = ["-m", "hparams_search=optuna", *selected, f"paths.root_dir={tmp_path}", "debug=fast",
               "data.resolution=choice(256x144,320x180)"]  # small sizes for the CPU; lr and decoder depth as configured
    first = run_cli("neo-train", *command, "hydra.sweeper.n_trials=2", cwd=tmp_path)  # in-process: Hydra runs the trials
    assert first.returncode == 0, output(first)
    sweep = tmp_path / "outputs/sweeps/tiny_optuna"
    storage = f"sqlite:///{sweep}/optuna.db"
    trials = optuna.load_study(study_name="tiny_optuna", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert set(trials[0].params) == {"optim.lr", "data.resolution", "model.net.decoder.num_layers"}
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 2 and all(r["status"] == "finished" for r in rows)
    for row in rows:  # each trial's objective is its run's best val AP
        record = read_json(sweep / row["run"] / "summary.json")
        lr = float(row["overrides"].split("optim.lr=")[1].split()[0])
        trial = next(t for t in trials if abs(t.params["optim.lr"] - lr) < 1e-12)
        assert trial.value == pytest.approx(record["metrics"]["AP"])
    assert (sweep / "optimization_results.yaml").is_file()

    again = run_cli("neo-train", *command, "hydra.sweeper.n_trials=1", cwd=tmp_path)
    assert again.returncode == 0, output(again)
    assert len(optuna.load_study(study_name="tiny_optuna", storage=storage).trials) == 3  # continued, not new
    assert len(list(csv.DictReader((sweep / "summary.csv").open()))) == 1  # this invocation's trial only
    assert "Earlier runs in this folder (2" in (sweep / "summary.md").read_text()
