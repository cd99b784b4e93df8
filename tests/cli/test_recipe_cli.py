"""``erckit recipe check``: data roots that are not there warn (exit 0); hostile ``extends`` targets fail at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from erckit.cli import console as ui
from erckit.cli.main import main

MELD_RECIPE = """\
# erckit recipe check meld.toml
[data]
dataset = "erckit.MELD.v1"
root = "{root}"

[model.encoders.text]
factory = "example.BagOfWords.v1"

[[stages]]
kind = "supervised"
encoders = ["text"]
"""


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ui.console, "_width", 400)


def check(capsys: pytest.CaptureFixture, path: Path, *extra: str) -> tuple[int, str]:
    code = main(["recipe", "check", str(path), *extra])
    return code, capsys.readouterr().err


def test_missing_data_root_is_a_warning_with_where_to_get_the_data(capsys, tmp_path: Path):
    recipe = tmp_path / "meld.toml"
    recipe.write_text(MELD_RECIPE.format(root=tmp_path / "MELD.Raw"))
    code, err = check(capsys, recipe)
    assert code == 0
    warning, ok = err.strip().splitlines()
    assert warning.startswith(f"warning: data -> root: {tmp_path / 'MELD.Raw'} does not exist")
    assert "official MELD.Raw release" in warning and "--set data.root=/path/to/MELD.Raw" in warning
    assert ok.startswith(f"ok {recipe}")


def test_data_root_from_a_variable_names_the_variable(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("ERCKIT_TEST_MELD", raising=False)
    recipe = tmp_path / "meld.toml"
    recipe.write_text(MELD_RECIPE.format(root="${ERCKIT_TEST_MELD:-nowhere/MELD.Raw}"))
    monkeypatch.chdir(tmp_path)
    code, err = check(capsys, recipe)
    assert code == 0
    assert f"nowhere/MELD.Raw does not exist (relative to {tmp_path})" in err
    assert "export ERCKIT_TEST_MELD=/path/to/MELD.Raw (the recipe reads it) or --set data.root=/path/to/MELD.Raw" in err
    # pointed at a real directory, through the variable: no warning
    (tmp_path / "real").mkdir()
    monkeypatch.setenv("ERCKIT_TEST_MELD", str(tmp_path / "real"))
    code, err = check(capsys, recipe)
    assert code == 0 and "warning" not in err


def test_existing_root_and_generated_demo_root_do_not_warn(capsys, tmp_path: Path):
    (tmp_path / "MELD.Raw").mkdir()
    recipe = tmp_path / "meld.toml"
    recipe.write_text(MELD_RECIPE.format(root=tmp_path / "MELD.Raw"))
    assert check(capsys, recipe) == (0, f"ok {recipe}: dataset erckit.MELD.v1, encoders text, stages supervised (supervised)\n")
    demo = tmp_path / "demo.toml"
    demo.write_text(MELD_RECIPE.format(root=tmp_path / "not-yet").replace("erckit.MELD.v1", "erckit.Demo.v1"))
    code, err = check(capsys, demo)
    assert code == 0 and "warning" not in err  # the demo generates its root on first use


def test_set_data_root_silences_the_warning(capsys, tmp_path: Path):
    (tmp_path / "MELD.Raw").mkdir()
    recipe = tmp_path / "meld.toml"
    recipe.write_text(MELD_RECIPE.format(root="absent"))
    code, err = check(capsys, recipe, "--set", f"data.root={tmp_path / 'MELD.Raw'}")
    assert code == 0 and "warning" not in err


@pytest.mark.slow
def test_recipe_check_of_a_recipe_extending_a_fifo_fails_at_once(tmp_path: Path):
    """A real ``erckit recipe check`` process: it used to block forever opening the FIFO."""
    os.mkfifo(tmp_path / "pipe.toml")
    child = tmp_path / "child.toml"
    child.write_text('extends = "pipe.toml"\n')
    result = subprocess.run(
        [sys.executable, "-m", "erckit", "recipe", "check", str(child)],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, COLUMNS="400"),
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot read recipe {tmp_path / 'pipe.toml'} (extended by {child}): a named pipe (FIFO), not a regular file"
    ]
