"""Core CLI: components, plugins, recipe check/show, and every bad-input case.

Each bad input must give exit code 1 (2 for command-line usage errors), a short
message naming the offending file/key, and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from erckit.cli import console as ui
from erckit.cli.main import main
from erckit.recipe import load_recipe
from erckit.recipe.load import validate

GOOD = """\
# erckit recipe check good.toml
[data]
dataset = "erckit.Demo.v1"
root = "demo"
labels = ["neutral", "joy", "anger", "sadness"]

[model.encoders.text]
factory = "example.BagOfWords.v1"

[model.encoders.audio]
factory = "erckit.LogMelAudio.v1"

[model.fuser]
factory = "erckit.ConcatFuser.v1"

[[stages]]
name = "teacher"
kind = "supervised"
encoders = ["text"]
epochs = 2

[[stages]]
kind = "distill"
teacher = "text"
students = ["audio"]
losses = [{ factory = "erckit.KLDistill.v1" }]

[[stages]]
kind = "fuse"
"""

MAX_LINES = 40


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch):
    """Rich wraps at the terminal width; make it wide so messages stay on one line each."""
    monkeypatch.setattr(ui.console, "_width", 250)
    monkeypatch.setattr(ui.out, "_width", 250)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    return path


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit:  # argparse --help / --version
        code = exit.code if isinstance(exit.code, int) else 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean_failure(code: int, out: str, err: str, expected_code: int, *names: str) -> None:
    assert code == expected_code, err
    text = out + err
    assert "Traceback" not in text
    assert len(text.splitlines()) < MAX_LINES, text
    assert "error" in err
    for name in names:
        assert name in err, f"{name!r} not in:\n{err}"


# ------------------------------------------------------------------ listing commands


def test_help_and_version(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("components", "plugins", "recipe", "train", "predict", "evaluate", "data"):
        assert command in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("erckit ")


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "usage: erckit" in out


def test_components_lists_entry_point_component(capsys):
    code, out, _ = run(capsys, "components")
    assert code == 0
    row = next(line for line in out.splitlines() if "example.BagOfWords.v1" in line)
    assert "erckit-example" in row and "entry point erckit_encoders" in row
    for name in ("erckit.Demo.v1", "erckit.DialogueJSONL.v1", "erckit.ConcatFuser.v1", "erckit.KLDistill.v1",
                 "erckit.LogMelAudio.v1", "telme.RobertaTeacher.v1", "telme.ASF.v1", "telme.ResponseKD.v1"):
        assert name in out
    row = next(line for line in out.splitlines() if "telme.ASF.v1" in line)
    assert "fusers" in row and "erckit-telme" in row


def test_components_kind_filter(capsys):
    code, out, _ = run(capsys, "components", "--kind", "fusers")
    assert code == 0
    assert "erckit.ConcatFuser.v1" in out and "erckit.Demo.v1" not in out


def test_components_bad_kind_is_usage_error(capsys):
    code, out, err = run(capsys, "components", "--kind", "optimisers")
    assert_clean_failure(code, out, err, 2, "optimisers")


def test_plugins_lists_plugins_and_versions(capsys):
    from erckit import __version__

    code, out, _ = run(capsys, "plugins")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert "built-in" in rows["erckit.builtin.components"] and __version__ in rows["erckit.builtin.components"]
    assert "erckit-telme" in rows["telme"] and "0.1.0" in rows["telme"]
    assert "erckit-example" in rows["example"]


def test_plugin_command(capsys):
    code, out, _ = run(capsys, "example-info", "--name", "cli")
    assert code == 0 and "hello cli from erckit-example" in out


# -------------------------------------------------------------------- recipe check/show


def test_recipe_check_ok(capsys, good):
    code, out, err = run(capsys, "recipe", "check", str(good))
    assert code == 0, err
    assert "ok" in err and str(good) in err
    assert "teacher (supervised), distill (distill), fuse (fuse)" in err
    assert out == ""


def test_recipe_show_round_trips(capsys, good):
    code, out, err = run(capsys, "recipe", "show", str(good), "--set", "stages.distill.epochs=4")
    assert code == 0, err
    assert out.startswith(f"# resolved from {good}")
    shown = tomllib.loads(out)
    assert shown["stages"][1]["epochs"] == 4
    assert shown["data"]["labels"] == ["neutral", "joy", "anger", "sadness"]
    assert shown["model"]["encoders"]["text"]["buckets"] == 1024  # default filled in
    assert validate(shown, "shown") == load_recipe(good, ["stages.distill.epochs=4"])
    # and the printed file itself is a recipe erckit accepts
    printed = good.parent / "shown.toml"
    printed.write_text(out)
    assert run(capsys, "recipe", "check", str(printed))[0] == 0


def test_recipe_without_action_prints_help(capsys):
    code, out, _ = run(capsys, "recipe")
    assert code == 0 and "check" in out and "show" in out


# ------------------------------------------------------------------------- bad input


def bad(tmp_path: Path, old: str, new: str) -> Path:
    assert old in GOOD
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(old, new))
    return path


def test_unknown_component(capsys, tmp_path):
    path = bad(tmp_path, "erckit.ConcatFuser.v1", "acme.Fuse.v1")
    code, out, err = run(capsys, "recipe", "check", str(path))
    assert_clean_failure(code, out, err, 1, str(path), "model -> fuser -> factory", "acme.Fuse.v1",
                         "erckit.ConcatFuser.v1", "pip install erckit-acme")


def test_misspelled_key(capsys, tmp_path):
    path = bad(tmp_path, "epochs = 2", "epocs = 2")
    code, out, err = run(capsys, "recipe", "check", str(path))
    assert_clean_failure(code, out, err, 1, str(path), "stages -> teacher -> epocs", "Did you mean 'epochs'")


def test_wrong_type(capsys, tmp_path):
    path = bad(tmp_path, "epochs = 2", 'epochs = "ten"')
    code, out, err = run(capsys, "recipe", "check", str(path))
    assert_clean_failure(code, out, err, 1, str(path), "stages -> teacher -> epochs", "valid integer", "'ten'")


def test_missing_required_key(capsys, tmp_path):
    path = bad(tmp_path, 'students = ["audio"]\n', "")
    code, out, err = run(capsys, "recipe", "check", str(path))
    assert_clean_failure(code, out, err, 1, str(path), "stages -> distill -> students: missing required argument of erckit.Distill.v1")


def test_recipe_file_missing(capsys, tmp_path):
    path = tmp_path / "nowhere.toml"
    code, out, err = run(capsys, "recipe", "check", str(path))
    assert_clean_failure(code, out, err, 1, str(path), "not found")


def test_toml_syntax_error(capsys, tmp_path):
    path = bad(tmp_path, 'root = "demo"', "root = ")
    code, out, err = run(capsys, "recipe", "show", str(path))
    assert_clean_failure(code, out, err, 1, str(path), "TOML syntax error", "line 4", "root =")
    assert out == ""


def test_extends_cycle(capsys, tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    code, out, err = run(capsys, "recipe", "check", str(tmp_path / "a.toml"))
    assert_clean_failure(code, out, err, 1, "extends: cycle", "a.toml", "b.toml")


def test_set_on_unknown_key(capsys, good):
    code, out, err = run(capsys, "recipe", "check", str(good), "--set", "stages.teacher.epoch=3")
    assert_clean_failure(code, out, err, 1, str(good), "stages -> teacher -> epoch", "from --set", "Did you mean 'epochs'")


def test_set_on_unknown_stage(capsys, good):
    code, out, err = run(capsys, "recipe", "check", str(good), "--set", "stages.student.epochs=3")
    assert_clean_failure(code, out, err, 1, str(good), "'student'", "teacher, distill, fuse")


def test_set_with_wrong_type(capsys, good):
    code, out, err = run(capsys, "recipe", "check", str(good), "--set", "stages.teacher.lr=fast")
    assert_clean_failure(code, out, err, 1, "stages -> teacher -> optimizer -> lr", "from --set", "'fast'")


def test_malformed_set_is_usage_error(capsys, good):
    code, out, err = run(capsys, "recipe", "check", str(good), "--set", "stages.teacher.epochs")
    assert_clean_failure(code, out, err, 2, "--set expects KEY=VALUE", "stages.teacher.epochs")


def test_unknown_command_is_usage_error(capsys):
    code, out, err = run(capsys, "frobnicate")
    assert_clean_failure(code, out, err, 2, "frobnicate", "invalid choice")


def test_unknown_recipe_action_is_usage_error(capsys):
    code, out, err = run(capsys, "recipe", "frob")
    assert_clean_failure(code, out, err, 2, "frob")


def test_missing_argument_is_usage_error(capsys):
    code, out, err = run(capsys, "recipe", "check")
    assert_clean_failure(code, out, err, 2, "recipe")


def test_broken_recipe_prints_all_errors_at_once(capsys, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(
        GOOD.replace("epochs = 2", 'epochs = "ten"\nlearning_rate = 1')
        .replace('root = "demo"', 'rooot = "demo"')
        .replace("erckit.LogMelAudio.v1", "erckit.LogMelAudio.v2")
        .replace('teacher = "text"\n', "")
    )
    code, out, err = run(capsys, "recipe", "check", str(path))
    assert_clean_failure(
        code, out, err, 1, f"{path}: 5 problems",
        "stages -> teacher -> epochs", "stages -> teacher -> learning_rate", "stages -> distill -> teacher",
        "data -> rooot", "model -> encoders -> audio -> factory: unknown encoder 'erckit.LogMelAudio.v2'",
    )


def test_bad_input_in_a_real_process(tmp_path):
    """The installed entry point behaves the same: exit 1, message, no traceback."""
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace("epochs = 2", "epocs = 2"))
    env = dict(os.environ, COLUMNS="200")
    result = subprocess.run([sys.executable, "-m", "erckit", "recipe", "check", str(path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "epocs" in result.stderr and str(path) in result.stderr
