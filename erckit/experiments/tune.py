"""``erckit tune``: hyperparameter search on Optuna, every trial a normal run folder.

The space file names recipe paths exactly as ``--set`` does, each with a range or choices::

    ["stages.teacher.lr"]
    low = 1e-4
    high = 1e-2
    log = true

    ["stages.teacher.batch_size"]
    choices = [4, 8]

The objective is the dev weighted F1 of each trial's saved model (the epoch its last stage
selected); test is never looked at. Every epoch's dev weighted F1 is reported to Optuna
through the ``on_epoch_end`` training hook, so its pruner can stop a poor trial early.
Everything checkable is checked before the first trial: the space file, every range end
and choice against the recipe, and the storage URL.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ErckitError, RecipeError
from ..plugins import hookimpl
from . import runs

OBJECTIVE = "dev/weighted_f1"
_INSTALL = 'pip install "erckit[tune]"'


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ErckitError(f"erckit tune needs Optuna: {_INSTALL}") from None
    return optuna


@dataclass(frozen=True)
class Param:
    """One searched recipe value: a float or int range (optionally log or stepped), or a list of choices."""

    path: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high)) and (
            self.step is None or isinstance(self.step, int))

    def probes(self) -> list[Any]:
        """The values checked against the recipe before any trial: both ends, or every choice."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.is_int:
            return trial.suggest_int(self.path, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.path, float(self.low), float(self.high), step=self.step, log=self.log)


def read_space(path: Path) -> list[Param]:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ErckitError(f"space file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ErckitError(f"cannot read space file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ErckitError(f"{path}: TOML syntax error: {error}") from None
    if not raw:
        raise ErckitError(f"{path}: no parameters; name recipe paths as tables, e.g. [\"stages.teacher.lr\"] low = 1e-4 high = 1e-2")
    params = []
    for name, spec in raw.items():
        where = f"{path}: {name}"
        if not isinstance(spec, dict):
            raise ErckitError(f"{where}: expected a table with low/high or choices (quote the dotted path: [\"{name}\"])")
        params.append(_param(name, spec, where))
    return params


def _param(name: str, spec: dict[str, Any], where: str) -> Param:
    unknown = set(spec) - {"low", "high", "log", "step", "choices"}
    if unknown:
        raise ErckitError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; use low, high, log, step or choices")
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise ErckitError(f"{where}: choices cannot be combined with low/high/log/step")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ErckitError(f"{where}: choices must be a non-empty list")
        if len({json.dumps(c, sort_keys=True) for c in choices}) != len(choices):
            raise ErckitError(f"{where}: a choice is listed twice")
        return Param(name, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise ErckitError(f"{where}: give both low and high (or choices)")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    for key, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
            raise ErckitError(f"{where}: {key} must be a finite number, got {value!r}")
    if not isinstance(log, bool):
        raise ErckitError(f"{where}: log must be true or false")
    if not low < high:
        raise ErckitError(f"{where}: empty range: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ErckitError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None and (step <= 0 or log):
        raise ErckitError(f"{where}: step must be positive and cannot be combined with log")
    return Param(name, low=low, high=high, log=log, step=step)


def override(path: str, value: Any) -> str:
    """``path=value`` with the value as a TOML literal (what ``--set`` reads)."""
    return f"{path}={json.dumps(value)}"


def check_space(params: Sequence[Param], load: Callable[[list[str]], Any], space: Path) -> None:
    """Load the recipe with each range end and each choice; a path the recipe rejects is named before any trial."""
    for param in params:
        for value in param.probes():
            try:
                load([override(param.path, value)])
            except RecipeError as error:
                problems = "; ".join(error.problems)
                raise ErckitError(f"{space}: {param.path} = {value!r} is not accepted by the recipe: {problems}") from None


def open_study(storage: str, study: str, pruner: Any = None) -> Any:
    """Create the study, or join it when it exists (several machines on one database share one study)."""
    optuna = require_optuna()
    try:
        return optuna.create_study(study_name=study, storage=storage, direction="maximize",
                                   load_if_exists=True, pruner=pruner)
    except Exception as error:  # noqa: BLE001 - SQLAlchemy's, a driver's or Optuna's: all mean "cannot open it"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ErckitError(f"cannot open the study storage {storage!r}: {first}") from None


class _EpochReporter:
    """The training hook that reports each epoch's dev weighted F1 to the trial and stops a pruned one."""

    def __init__(self, trial: Any):
        self.trial, self.step = trial, 0

    @hookimpl
    def on_epoch_end(self, run: Any, stage: str, epoch: int, metrics: Any) -> None:
        if OBJECTIVE not in metrics:
            return
        self.step += 1  # epochs counted across stages: steps must increase within a trial
        self.trial.report(float(metrics[OBJECTIVE]), self.step)
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned at {stage} epoch {epoch} (dev weighted F1 {metrics[OBJECTIVE]:.4f})")


def make_objective(params: Sequence[Param], load: Callable[[list[str]], Any], recipe_name: str, base: Path,
                   options: Any, say: Callable[[str], None] = print) -> Callable[[Any], float]:
    from ..plugins import get_plugin_manager
    from ..train import train

    def objective(trial: Any) -> float:
        values = {p.path: p.suggest(trial) for p in params}
        recipe = load([override(k, v) for k, v in values.items()])
        directory = Path(base) / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", str(directory.absolute()))
        say(f"trial {trial.number} into {directory}: " + ", ".join(f"{k}={v!r}" for k, v in values.items()))
        manager = get_plugin_manager()
        reporter = _EpochReporter(trial)
        manager.register(reporter, name=f"erckit.tune.trial-{trial.number}")
        try:
            result = train(recipe, f"{recipe_name} trial {trial.number}", replace(options, output=directory))
        finally:
            manager.unregister(reporter)
        dev = runs.selected_dev(result.history)
        if OBJECTIVE not in dev:
            raise ErckitError(f"trial {trial.number}: no dev weighted F1 in its metrics (does the data have a dev split?)")
        return dev[OBJECTIVE]

    return objective


def trials_table(study: Any) -> Any:
    from rich.table import Table

    names = sorted({name for trial in study.trials for name in trial.params})
    table = Table(title=f"study {study.study_name}: objective dev weighted F1 (maximised)")
    for column in ("trial", "state", "dev wF1", *names):
        table.add_column(column, justify="right" if column != "state" else "left")
    for trial in study.trials:
        value = "" if trial.value is None else f"{trial.value:.4f}"
        table.add_row(str(trial.number), trial.state.name.lower(), value,
                      *(repr(trial.params[n]) if n in trial.params else "" for n in names))
    return table


def best_overrides(study: Any) -> list[str]:
    return [override(k, v) for k, v in study.best_trial.params.items()]
