"""``erckit components``: whole names when piped; ``erckit components NAME`` shows one component's arguments."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from erckit.cli.main import main
from erckit.registry import REGISTRIES


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_piped_listing_keeps_every_name_and_package_whole() -> None:
    """Into a pipe with COLUMNS unset (rich would assume 80 columns), no name or package is wrapped or cut."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = subprocess.run([sys.executable, "-m", "erckit", "components"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for registry in REGISTRIES.values():
        for name in registry.get_all():
            origin = registry.origins[name]
            row = next((line for line in lines if f" {name} " in line), None)
            assert row is not None, f"{name} is not on one line of the piped listing:\n{result.stdout}"
            assert origin.package in row and origin.plugin in row, row
    assert "…" not in result.stdout  # nothing truncated with an ellipsis


def test_one_component_shows_its_arguments_with_types_and_defaults(capsys) -> None:
    code, out, err = run(capsys, "components", "example.BagOfWords.v1")
    assert code == 0, err
    assert "example.BagOfWords.v1 (encoder)" in out
    assert "erckit-example" in out  # the package
    assert "Hashed bag-of-words over the target utterance" in out  # the description
    assert "buckets: size of the hashed vocabulary" in out  # the whole docstring, not just its first line
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]] for line in out.splitlines()
            if line.startswith("│")}
    assert rows["buckets"] == ["int", "1024"]
    assert rows["dim"] == ["int", "64"]
    assert rows["context"] == ["bool", "false"]  # as written in a recipe
    assert rows["num_classes"] == ["int", "set by erckit"]


def test_required_and_string_arguments(capsys) -> None:
    code, out, _ = run(capsys, "components", "erckit.DialogueJSONL.v1")
    assert code == 0
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]] for line in out.splitlines()
            if line.startswith("│")}
    assert rows["root"][1] == "required"
    assert rows["labels"][1] == "unset"


@pytest.mark.parametrize("typo, expected", [
    ("example.BagOfWord.v1", "example.BagOfWords.v1"),
    ("erckit.ConcatFuser.v9", "erckit.ConcatFuser.v1"),
    ("ConcatFuser", "erckit.ConcatFuser.v1"),
])
def test_unknown_name_lists_close_matches(capsys, typo: str, expected: str) -> None:
    code, out, err = run(capsys, "components", typo)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"unknown component {typo!r}" in err and expected in err


def test_unknown_name_without_any_match(capsys) -> None:
    code, _, err = run(capsys, "components", "zzz.Nothing.v1")
    assert code == 1
    assert "'erckit components' lists all" in err


def test_columns_fits_the_listing_to_a_width() -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "LINES"}, "COLUMNS": "70"}
    result = subprocess.run([sys.executable, "-m", "erckit", "components"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 70
