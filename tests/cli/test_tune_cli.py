"""``erckit tune``: Optuna trials as run folders, dev weighted F1 as the objective, pruning, bad input refused up front."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from erckit.cli.main import main  # noqa: E402
from erckit.experiments import tune  # noqa: E402
from erckit.experiments.runs import selected_dev  # noqa: E402
from tiny_runs import write_tiny_recipe  # noqa: E402

SPACE = """\
["stages.teacher.lr"]
low = 1e-3
high = 1e-1
log = true

["model.encoders.text.dim"]
choices = [4, 8]
"""
COMMON = ["--device", "cpu", "--threads", "1", "--no-progress"]


@pytest.mark.slow
def test_three_trials_on_sqlite_and_the_best_params_reproduce_the_best_dev_f1(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from erckit.recipe import load_recipe
    from erckit.train import TrainOptions, train

    recipe = write_tiny_recipe(tmp_path, tmp_path / "demo", epochs=2)
    (tmp_path / "space.toml").write_text(SPACE)
    # the defaults: storage sqlite:///study.db here, study named after the recipe, trials in runs/<study>-tune
    monkeypatch.chdir(tmp_path)
    assert main(["tune", str(recipe), "--space", "space.toml", "--trials", "3", *COMMON]) == 0
    printed = capsys.readouterr().err
    assert "train it again with: erckit train" in printed
    storage, out = f"sqlite:///{tmp_path / 'study.db'}", tmp_path / "runs" / "tiny-tune"

    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    for trial in study.trials:  # each trial is a run folder; its value is the dev F1 of the selected epoch
        directory = Path(trial.user_attrs["run_dir"])
        assert directory == (out / f"trial-{trial.number}").absolute()
        rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
        assert trial.value == selected_dev(rows)["dev/weighted_f1"]
        assert 1e-3 <= trial.params["stages.teacher.lr"] <= 1e-1 and trial.params["model.encoders.text.dim"] in (4, 8)
    best = study.best_trial
    assert best.value == max(t.value for t in study.trials)

    again = train(load_recipe(recipe, tune.best_overrides(study)), "again",
                  TrainOptions(output=tmp_path / "again", device="cpu", threads=1, progress=False))
    assert selected_dev(again.history)["dev/weighted_f1"] == best.value

    # a second process on the same storage and study (another machine, in Optuna's distributed mode) joins it
    assert main(["tune", str(recipe), "--space", str(tmp_path / "space.toml"), "--trials", "1",
                 "--storage", storage, "--study", "tiny", "-o", str(out), *COMMON]) == 0
    assert [t.number for t in optuna.load_study(study_name="tiny", storage=storage).trials] == [0, 1, 2, 3]
    assert (out / "trial-3" / "model" / "model.safetensors").is_file()


def test_ranges_become_optuna_distributions() -> None:
    study = optuna.create_study()
    trial = study.ask()
    assert tune.Param("a", low=2, high=10, step=4).suggest(trial) in (2, 6, 10)
    assert isinstance(tune.Param("b", low=1e-4, high=1e-2, log=True).suggest(trial), float)
    assert tune.Param("c", choices=("x", "y")).suggest(trial) in ("x", "y")
    assert trial.distributions["a"] == optuna.distributions.IntDistribution(2, 10, step=4)
    assert trial.distributions["b"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)


def test_defaults_are_a_sqlite_file_here_and_runs_named_after_the_recipe() -> None:
    from erckit.cli.main import build_parser

    args = build_parser(with_plugins=False).parse_args(["tune", "r.toml", "--space", "s.toml", "--trials", "2"])
    assert args.storage == "sqlite:///study.db" and args.study is None and args.output is None and args.prune


@pytest.mark.slow
def test_a_trial_below_the_pruners_threshold_stops_after_its_first_epoch(tmp_path: Path) -> None:
    from erckit.recipe import load_recipe
    from erckit.train import TrainOptions

    recipe = write_tiny_recipe(tmp_path, tmp_path / "demo", epochs=3)
    params = [tune.Param("stages.teacher.lr", low=0.01, high=0.02)]
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))  # F1 < 2: always
    options = TrainOptions(device="cpu", threads=1, progress=False)
    objective = tune.make_objective(params, lambda extra: load_recipe(recipe, extra), "tiny", tmp_path / "t", options,
                                    say=lambda line: None)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    assert study.trials[0].intermediate_values.keys() == {1}
    rows = (tmp_path / "t" / "trial-0" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1 and not (tmp_path / "t" / "trial-0" / "model").exists()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ('["stages.teacher.lrr"]\nlow = 0.1\nhigh = 0.2\n', "stages.teacher.lrr = 0.1 is not accepted by the recipe"),
        ('["model.encoders.nope.dim"]\nchoices = [4]\n', "model.encoders.nope.dim = 4 is not accepted by the recipe"),
        ('["stages.teacher.lr"]\nlow = 0.1\nhigh = 0.1\n', "empty range: low (0.1) must be below high (0.1)"),
        ('["stages.teacher.lr"]\nchoices = []\n', "choices must be a non-empty list"),
        ('["stages.teacher.lr"]\nlow = 0.0\nhigh = 0.1\nlog = true\n', "a log range needs low > 0"),
        ('["stages.teacher.lr"]\nchoices = [0.1, 0.1]\n', "a choice is listed twice"),
        ("[[oops", "TOML syntax error"),
        ("", "no parameters"),
        (None, "space file not found"),
    ],
)
def test_a_bad_space_file_is_refused_before_any_trial(tmp_path: Path, capsys: pytest.CaptureFixture, space: str | None, message: str) -> None:
    recipe = write_tiny_recipe(tmp_path, tmp_path / "demo")
    if space is not None:
        (tmp_path / "space.toml").write_text(space)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    code = main(["tune", str(recipe), "--space", str(tmp_path / "space.toml"), "--trials", "1", "--storage", storage,
                 "-o", str(tmp_path / "trials"), *COMMON])
    error = capsys.readouterr().err
    assert code == 1 and message in error and error.count("\n") <= 2, error
    assert not (tmp_path / "trials").exists() and not (tmp_path / "study.db").exists()


def test_a_storage_that_cannot_be_opened_is_refused_before_any_trial(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = write_tiny_recipe(tmp_path, tmp_path / "demo")
    (tmp_path / "space.toml").write_text(SPACE)
    for storage in (f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'study.db'}", "nosuchdb://host/x"):
        code = main(["tune", str(recipe), "--space", str(tmp_path / "space.toml"), "--trials", "1",
                     "--storage", storage, "-o", str(tmp_path / "trials"), *COMMON])
        error = capsys.readouterr().err
        assert code == 1 and f"cannot open the study storage {storage!r}" in error, error
        assert error.count("\n") == 1
    assert not (tmp_path / "trials").exists()


def test_without_optuna_tune_names_the_extra(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    recipe = write_tiny_recipe(tmp_path, tmp_path / "demo")
    assert main(["tune", str(recipe), "--space", str(tmp_path / "space.toml"), "--trials", "1"]) == 1
    assert capsys.readouterr().err.strip() == 'error: erckit tune needs Optuna: pip install "erckit[tune]"'
