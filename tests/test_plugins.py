"""Plugin discovery: entry points, autoload switch, broken plugins, pluggy training events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from erckit import plugins
from erckit.plugins import hookimpl


def run_erckit(args: list[str], env_changes: dict[str, str | None], pythonpath: Path | None = None):
    """``python -m erckit ARGS`` in a clean interpreter with a wide terminal."""
    env = dict(os.environ, COLUMNS="250")
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "erckit", *args], capture_output=True, text=True, env=env, timeout=120
    )


AUTOLOAD_ON = {"ERCKIT_DISABLE_PLUGIN_AUTOLOAD": None, "ERCKIT_PLUGINS": None}


@pytest.fixture
def broken_plugin_path(tmp_path: Path) -> Path:
    """A fake installed distribution whose ``erckit`` entry point raises at import."""
    (tmp_path / "broken_plugin.py").write_text('raise RuntimeError("kaboom at import")\n')
    info = tmp_path / "erckit_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: erckit-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[erckit]\nbroken = broken_plugin\n")
    return tmp_path


# ---------------------------------------------------------------------------- in-process


def test_loaded_plugins_include_builtins_and_selected_entry_points():
    infos = {info.name: info for info in plugins.loaded_plugins()}
    assert infos["erckit.builtin.components"].source == "built-in"
    assert infos["erckit.builtin.datasets"].package == "erckit"
    assert infos["telme"].package == "erckit-telme"
    assert infos["example"].package == "erckit-example"
    assert infos["example"].source == "entry point erckit"
    assert infos["example.BagOfWords.v1"].source == "entry point erckit_encoders"
    assert all(info.version for info in infos.values())
    assert plugins.failed_plugins() == []


def test_plugin_manager_has_hooks_and_plugins():
    manager = plugins.get_plugin_manager()
    assert manager.project_name == "erckit"
    assert manager.has_plugin("telme") and manager.has_plugin("example")
    for hook in ("register_components", "register_commands", "on_train_start", "on_stage_start",
                 "on_epoch_end", "on_stage_end", "on_train_end"):
        assert hasattr(manager.hook, hook)


def test_load_plugins_is_idempotent():
    before = plugins.loaded_plugins()
    plugins.load_plugins()
    assert plugins.loaded_plugins() == before


# ------------------------------------------------------------------------- subprocesses


def test_autoload_off_without_selection_hides_entry_point_plugins():
    result = run_erckit(["components"], {"ERCKIT_DISABLE_PLUGIN_AUTOLOAD": "1", "ERCKIT_PLUGINS": None})
    assert result.returncode == 0, result.stderr
    assert "erckit.ConcatFuser.v1" in result.stdout  # built-ins always load
    assert "example.BagOfWords.v1" not in result.stdout
    assert "telme." not in result.stdout


def test_autoload_on_lists_entry_point_only_component():
    result = run_erckit(["components", "--kind", "encoders"], AUTOLOAD_ON)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "example.BagOfWords.v1" in line)
    assert "erckit-example" in row
    assert "telme.RobertaTeacher.v1" in result.stdout


def test_plugin_selection_by_distribution_name():
    result = run_erckit(["components"], {"ERCKIT_DISABLE_PLUGIN_AUTOLOAD": "1", "ERCKIT_PLUGINS": "erckit-example"})
    assert result.returncode == 0, result.stderr
    assert "example.BagOfWords.v1" in result.stdout
    assert "telme." not in result.stdout


def test_broken_plugin_costs_one_warning(broken_plugin_path: Path):
    result = run_erckit(["components"], AUTOLOAD_ON, pythonpath=broken_plugin_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, result.stderr
    assert "broken" in warnings[0] and "kaboom at import" in warnings[0]
    assert "RuntimeError" in warnings[0]
    # everything else still works
    for name in ("erckit.ConcatFuser.v1", "erckit.Demo.v1", "example.BagOfWords.v1",
                 "telme.RobertaTeacher.v1", "telme.ASF.v1"):
        assert name in result.stdout


def test_broken_plugin_is_reported_once_by_erckit_plugins(broken_plugin_path: Path):
    result = run_erckit(["plugins"], AUTOLOAD_ON, pythonpath=broken_plugin_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("kaboom at import") == 1, result.stderr
    assert "erckit-example" in result.stdout and "erckit-telme" in result.stdout


def test_broken_plugin_not_loaded_when_autoload_is_off(broken_plugin_path: Path):
    result = run_erckit(
        ["components"], {"ERCKIT_DISABLE_PLUGIN_AUTOLOAD": "1", "ERCKIT_PLUGINS": "telme"},
        pythonpath=broken_plugin_path,
    )
    assert result.returncode == 0
    assert "kaboom" not in result.stderr


def test_plugin_cli_command():
    result = run_erckit(["example-info", "--name", "tester"], {})
    assert result.returncode == 0, result.stderr
    assert "hello tester from erckit-example" in result.stdout


# ------------------------------------------------------------------- hostile plugins


def fake_plugin(root: Path, dist: str, module: str, source: str, entry_points: str) -> Path:
    """A fake installed distribution ``dist`` (dist-info on sys.path) holding ``module``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return root


TEACHER_RECIPE = """\
[data]
dataset = "erckit.Demo.v1"

[model.encoders.text]
factory = "telme.RobertaTeacher.v1"
max_length = 64

[[stages]]
kind = "supervised"
encoders = ["text"]
"""

IMPOSTOR = """\
from erckit.plugins import hookimpl

def impostor(num_classes: int, **anything):
    \"\"\"Not TelME's teacher.\"\"\"
    raise RuntimeError("the impostor's code ran")

@hookimpl
def register_components(register):
    register("encoders", "telme.RobertaTeacher.v1", impostor{override})
    register("encoders", "aaa.Own.v1", impostor)
"""


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_plugin_claiming_another_packages_name_is_refused_naming_both(tmp_path: Path):
    """'aaa' loads before 'telme': it used to take telme.RobertaTeacher.v1 and telme was the one refused."""
    path = fake_plugin(tmp_path, "aaa-impostor", "aaa_impostor", IMPOSTOR.format(override=""), "[erckit]\naaa = aaa_impostor\n")
    recipe = tmp_path / "teacher.toml"
    recipe.write_text(TEACHER_RECIPE)
    result = run_erckit(["recipe", "check", str(recipe)], AUTOLOAD_ON, pythonpath=path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (warning,) = warning_lines(result.stderr)
    for part in ("telme.RobertaTeacher.v1", "aaa-impostor 0.1", "erckit-telme 0.1.0", "neither is used", "override=True"):
        assert part in warning, warning
    problem = next(line for line in result.stderr.splitlines() if "model -> encoders -> text -> factory" in line)
    assert "aaa-impostor 0.1" in problem and "erckit-telme 0.1.0" in problem
    # the rest of both plugins keeps working
    listed = run_erckit(["components", "--kind", "encoders"], AUTOLOAD_ON, pythonpath=path)
    assert listed.returncode == 0
    assert "aaa.Own.v1" in listed.stdout and "telme.AudioStudent.v1" in listed.stdout
    assert "telme.RobertaTeacher.v1" not in listed.stdout


def test_explicit_override_replaces_without_a_warning(tmp_path: Path):
    path = fake_plugin(tmp_path, "aaa-impostor", "aaa_impostor", IMPOSTOR.format(override=", override=True"),
                       "[erckit]\naaa = aaa_impostor\n")
    result = run_erckit(["components", "--kind", "encoders"], AUTOLOAD_ON, pythonpath=path)
    assert result.returncode == 0 and warning_lines(result.stderr) == [], result.stderr
    row = next(line for line in result.stdout.splitlines() if "telme.RobertaTeacher.v1" in line)
    assert "aaa-impostor 0.1" in row and "Not TelME's teacher." in row
    listed = run_erckit(["plugins"], AUTOLOAD_ON, pythonpath=path)
    assert "override: encoders telme.RobertaTeacher.v1 of erckit-telme 0.1.0 is replaced by aaa-impostor 0.1" in listed.stderr


def test_plugin_cannot_take_a_builtin_name(tmp_path: Path):
    source = (
        "from erckit.plugins import hookimpl\n"
        "def fuser(num_classes: int): ...\n"
        "@hookimpl\n"
        "def register_components(register):\n"
        "    register('fusers', 'erckit.ConcatFuser.v1', fuser)\n"
        "    register('fusers', 'thief.Own.v1', fuser)\n"
    )
    path = fake_plugin(tmp_path, "erckit-thief", "thief_plugin", source, "[erckit]\nthief = thief_plugin\n")
    result = run_erckit(["components", "--kind", "fusers"], AUTOLOAD_ON, pythonpath=path)
    assert result.returncode == 0
    (warning,) = warning_lines(result.stderr)
    assert "erckit.ConcatFuser.v1" in warning and "erckit 0.1.0" in warning and "erckit-thief 0.1" in warning
    row = next(line for line in result.stdout.splitlines() if "erckit.ConcatFuser.v1" in line)
    assert "erckit.builtin.components" in row
    assert "thief.Own.v1" in result.stdout


@pytest.mark.parametrize("where", ["import", "hook"])
def test_plugin_raising_systemexit_is_skipped_with_its_name(tmp_path: Path, where: str):
    source = "raise SystemExit(3)\n" if where == "import" else (
        "from erckit.plugins import hookimpl\n"
        "@hookimpl\n"
        "def register_components(register):\n"
        "    register('fusers', 'exiter.Half.v1', lambda num_classes: None)\n"
        "    raise SystemExit('bye')\n"
    )
    path = fake_plugin(tmp_path, "erckit-exiter", "exiter_plugin", source, "[erckit]\nexiter = exiter_plugin\n")
    result = run_erckit(["components"], AUTOLOAD_ON, pythonpath=path)
    assert result.returncode == 0, result.stderr  # it used to be exit 3 with nothing printed
    (warning,) = warning_lines(result.stderr)
    assert "'exiter'" in warning and "erckit-exiter 0.1" in warning and "SystemExit" in warning
    assert "telme.RobertaTeacher.v1" in result.stdout and "erckit.ConcatFuser.v1" in result.stdout
    assert "exiter.Half.v1" not in result.stdout  # nothing of a plugin that failed half-way


def test_plugin_command_named_like_a_builtin_is_skipped(tmp_path: Path):
    source = (
        "from erckit.plugins import hookimpl\n"
        "@hookimpl\n"
        "def register_commands(add_command):\n"
        "    add_command('predict', 'not the real predict', lambda parser: None, lambda args: 7)\n"
        "    add_command('clash-extra', 'still added', lambda parser: parser.add_argument('--x'), lambda args: 0)\n"
    )
    path = fake_plugin(tmp_path, "erckit-clash", "clash_plugin", source, "[erckit]\nclash = clash_plugin\n")
    result = run_erckit([], AUTOLOAD_ON, pythonpath=path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    (warning,) = warning_lines(result.stderr)
    assert "'clash'" in warning and "erckit-clash 0.1" in warning and "'predict'" in warning and "built-in" in warning
    assert "clash-extra" in result.stdout and "example-info" in result.stdout
    assert run_erckit(["example-info"], AUTOLOAD_ON, pythonpath=path).returncode == 0


def test_non_callable_factory_is_refused_at_registration(tmp_path: Path):
    path = fake_plugin(tmp_path, "erckit-broken-ep", "broken_ep", "FACTORY = 42\n",
                       "[erckit_encoders]\nbroken.Thing.v1 = broken_ep:FACTORY\n")
    recipe = tmp_path / "r.toml"
    recipe.write_text(TEACHER_RECIPE.replace("telme.RobertaTeacher.v1", "broken.Thing.v1").replace("max_length = 64\n", ""))
    result = run_erckit(["recipe", "check", str(recipe)], AUTOLOAD_ON, pythonpath=path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (warning,) = warning_lines(result.stderr)
    assert "broken.Thing.v1" in warning and "erckit-broken-ep 0.1" in warning and "not a function" in warning
    problem = next(line for line in result.stderr.splitlines() if "model -> encoders -> text -> factory" in line)
    assert "not a function" in problem


def test_one_broken_entry_point_in_a_component_group_costs_only_itself(tmp_path: Path):
    """catalogue would import the whole erckit_fusers group at once and fail every lookup; erckit loads each alone."""
    (tmp_path / "raising_factory.py").write_text('raise ImportError("no such backend")\n')
    path = fake_plugin(
        tmp_path, "erckit-mixed", "good_factory", "def fuser(num_classes: int):\n    \"\"\"A good fuser.\"\"\"\n",
        "[erckit_fusers]\nmixed.Broken.v1 = raising_factory:fuser\nmixed.Good.v1 = good_factory:fuser\n",
    )
    result = run_erckit(["components", "--kind", "fusers"], AUTOLOAD_ON, pythonpath=path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    (warning,) = warning_lines(result.stderr)
    assert "mixed.Broken.v1" in warning and "erckit-mixed 0.1" in warning and "no such backend" in warning
    assert "mixed.Good.v1" in result.stdout and "erckit.ConcatFuser.v1" in result.stdout
    assert "mixed.Broken.v1" not in result.stdout


def test_reset_forgets_plugin_registrations_and_the_next_lookup_loads_them_again():
    from erckit import registry

    teacher = registry.encoders.get("telme.RobertaTeacher.v1")
    plugins.reset_plugins()
    try:
        assert registry.encoders.origins == {} and not registry.encoders.refused
        # the next lookup loads every plugin again, through the registry's loader
        assert registry.encoders.get("telme.RobertaTeacher.v1") is teacher
        assert registry.encoders.origins["telme.RobertaTeacher.v1"].package.startswith("erckit-telme")
    finally:
        plugins.load_plugins()
    assert plugins.failed_plugins() == []


# ------------------------------------------------------------------------ training events


class EventRecorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    @hookimpl
    def on_train_start(self, run):
        self.events.append(("train_start", run.rank))

    @hookimpl
    def on_stage_start(self, run, stage, kind):
        self.events.append(("stage_start", stage, kind))

    @hookimpl
    def on_epoch_end(self, run, stage, epoch, metrics):
        self.events.append(("epoch_end", stage, epoch, dict(metrics)))

    @hookimpl
    def on_stage_end(self, run, stage, metrics):
        self.events.append(("stage_end", stage, dict(metrics)))

    @hookimpl
    def on_train_end(self, run, metrics):
        self.events.append(("train_end", dict(metrics)))


@pytest.mark.slow
def test_training_events_reach_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from erckit.recipe.load import validate
    from erckit.train import TrainOptions, train

    log = tmp_path / "events.jsonl"
    monkeypatch.setenv("ERCKIT_EXAMPLE_EVENTS", str(log))
    recipe = validate(
        {
            "data": {"dataset": "erckit.Demo.v1", "root": str(tmp_path / "demo"), "media_policy": "zero",
                     "cache_dir": str(tmp_path / "cache")},
            "model": {"encoders": {"text": {"factory": "example.BagOfWords.v1", "dim": 8, "buckets": 64}}},
            "stages": [{"kind": "supervised", "encoders": ["text"], "epochs": 1, "lr": 1e-3}],
        },
        "events-test",
    )
    recorder = EventRecorder()
    manager = plugins.get_plugin_manager()
    manager.register(recorder, name="test-recorder")
    try:
        result = train(recipe, "t", TrainOptions(output=tmp_path / "run", progress=False))
    finally:
        manager.unregister(name="test-recorder")

    assert [e[0] for e in recorder.events] == ["train_start", "stage_start", "epoch_end", "stage_end", "train_end"]
    assert recorder.events[1] == ("stage_start", "supervised", "erckit.Supervised.v1")  # kind: its registered name
    _, stage, epoch, metrics = recorder.events[2]
    assert (stage, epoch) == ("supervised", 1)
    assert "train/loss" in metrics and "dev/weighted_f1" in metrics
    assert "test/weighted_f1" in recorder.events[4][1]
    assert result.model_dir.is_dir()

    # the example plugin (a real installed plugin) logged the same sequence
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in logged] == ["train_start", "stage_start", "epoch_end", "stage_end", "train_end"]
    assert logged[0]["directory"] == str(tmp_path / "run")
    assert logged[2]["stage"] == "supervised" and logged[2]["epoch"] == 1
