"""provenance.json: versions, the recipe's git commit, data fingerprints, hardware, command line; once per run."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from erckit.train import provenance

from .conftest import run_training, stage


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(directory), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_a_run_records_where_it_came_from(tmp_path: Path, make_recipe, monkeypatch: pytest.MonkeyPatch) -> None:
    from erckit import __version__

    recipe = make_recipe(stages=stage("supervised", name="teacher", encoders=["text"], epochs=1, batch_size=8))
    recipe_path = tmp_path / "recipe.toml"  # written by make_recipe; put it under git
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "recipe.toml")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "recipe")
    monkeypatch.setattr(sys, "argv", ["erckit", "train", "recipe.toml", "--seed", "0"])
    run = tmp_path / "run"
    run_training(recipe, run, recipe_path=recipe_path)

    record = json.loads((run / "provenance.json").read_text())
    assert record["erckit"] == __version__
    assert record["command"] == ["erckit", "train", "recipe.toml", "--seed", "0"]
    assert record["packages"]["torch"] == metadata.version("torch")
    assert record["hardware"]["torch_build"] == __import__("torch").__version__
    assert record["plugins"]["erckit-example"]  # the package of the bag-of-words encoder
    assert record["recipe"]["git"]["commit"] == _git(tmp_path, "rev-parse", "HEAD")
    assert record["recipe"]["git"]["dirty"] is False
    assert record["hardware"]["device"] == "cpu" and record["hardware"]["cpus"] >= 1
    data = record["data"]
    assert data["dataset"] == "erckit.DialogueJSONL.v1"
    assert set(data["fingerprints"]) == {"train", "dev", "test"}
    assert data["utterances"]["train"] > 0 and len(set(data["fingerprints"].values())) == 3
    assert record["resumes"] == []

    # the same data gives the same fingerprints; a resume keeps the record and appends itself
    again = provenance.record(run, recipe_path=recipe_path, data=data, device="cpu", resuming=True)
    assert again["time"] == record["time"] and len(again["resumes"]) == 1
    assert json.loads((run / "provenance.json").read_text())["resumes"][0]["erckit"] == __version__


def test_git_state_outside_a_repository_and_with_local_changes(tmp_path: Path) -> None:
    assert provenance.git_state(tmp_path) is None
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.toml").write_text("x = 1\n")
    _git(tmp_path, "add", "a.toml")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a")
    (tmp_path / "a.toml").write_text("x = 2\n")
    assert provenance.git_state(tmp_path)["dirty"] is True


def test_a_run_restarted_before_its_first_checkpoint_drops_its_old_provenance(tmp_path: Path) -> None:
    from erckit.train.rundir import MARKER, claim_run_dir

    run = tmp_path / "run"
    run.mkdir()
    (run / MARKER).write_text("")
    (run / provenance.FILE).write_text("{}")
    claim_run_dir(run, has_checkpoint=lambda d: False, say=lambda line: None).release()
    assert not (run / provenance.FILE).exists()
