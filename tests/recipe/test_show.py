"""``recipe_to_toml``: the resolved recipe, defaults filled in, round-trips through TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from erckit.recipe import load_recipe, recipe_to_dict, recipe_to_toml
from erckit.recipe.load import validate

RECIPE = """\
[data]
dataset = "erckit.Demo.v1"
root = "${ERCKIT_SHOW_ROOT:-demo}"
labels = ["neutral", "joy", "anger", "sadness"]

[model]
anchor = "text"

[model.encoders.text]
factory = "telme.RobertaTeacher.v1"
pretrained = "some/model"
config = { hidden_size = 32, num_hidden_layers = 1, "odd key" = "x" }

[model.encoders.audio]
factory = "erckit.LogMelAudio.v1"

[model.encoders.bow]
factory = "example.BagOfWords.v1"

[model.fuser]
factory = "telme.ASF.v1"
beta_shift = 0.5

[[stages]]
name = "teacher"
kind = "supervised"
encoders = ["text", "bow"]
lr = 2e-5
eval_batch_size = 16

[[stages]]
name = "students"
kind = "distill"
teacher = "text"
students = ["audio"]
losses = [{ factory = "telme.ResponseKD.v1", tau = 2.0 }, { factory = "erckit.KLDistill.v1", weight = 0.5 }]

[[stages]]
kind = "fuse"
epochs = 3

[runtime]
device = "cpu"
"""


@pytest.fixture
def recipe(tmp_path: Path):
    path = tmp_path / "r.toml"
    path.write_text(RECIPE)
    return load_recipe(path)


def test_show_fills_in_every_default(recipe):
    text = recipe_to_toml(recipe)
    data = tomllib.loads(text)
    assert data["data"]["media_policy"] == "error"
    assert data["data"]["seed"] == 0  # the dataset factory's default
    assert data["model"]["encoders"]["audio"]["n_mels"] == 64
    assert data["model"]["encoders"]["text"]["embedding_dim"] == 768
    assert data["model"]["fuser"]["heads"] == 3 and data["model"]["fuser"]["beta_shift"] == 0.5
    assert data["stages"][0]["optimizer"] == {"factory": "erckit.AdamW.v1", "lr": 2e-5, "weight_decay": 0.01,
                                              "betas": [0.9, 0.999], "eps": 1e-8, "decay_all": False}
    assert data["stages"][0]["objective"] == {"factory": "erckit.CrossEntropy.v1", "label_smoothing": 0.0}
    assert data["stages"][1]["losses"][0] == {"factory": "telme.ResponseKD.v1", "weight": 1.0, "tau": 2.0, "beta": 1.0, "gamma": 1.0}
    assert data["stages"][2]["name"] == "fuse"
    assert data["runtime"] == {"device": "cpu", "precision": "fp32", "deterministic": False, "threads": "auto"}
    # unset optional values are shown as comments, not dropped silently
    assert "# output_dir is not set" in text
    assert "# patience is not set" in text


def test_show_round_trips(recipe):
    text = recipe_to_toml(recipe, header="resolved from r.toml\nsecond line")
    assert text.startswith("# resolved from r.toml\n# second line\n")
    again = validate(tomllib.loads(text), "shown.toml")
    assert again == recipe
    assert recipe_to_toml(again, header="resolved from r.toml\nsecond line") == text


def test_round_trip_of_the_resolved_variables(recipe, monkeypatch):
    monkeypatch.setenv("ERCKIT_SHOW_ROOT", "${NOT_A_VARIABLE_ANY_MORE}")
    # the shown recipe holds the substituted value, not the ${...} expression
    assert tomllib.loads(recipe_to_toml(recipe))["data"]["root"] == "demo"


def test_special_values_round_trip(tmp_path: Path):
    path = tmp_path / "r.toml"
    path.write_text(RECIPE.replace('beta_shift = 0.5', 'beta_shift = 1e-12').replace(
        'pretrained = "some/model"', 'pretrained = "quote \\" backslash \\\\ unicode é\\ttab"'))
    recipe = load_recipe(path)
    again = validate(tomllib.loads(recipe_to_toml(recipe)), "shown.toml")
    assert again == recipe
    assert again.model.encoders["text"].args["pretrained"] == 'quote " backslash \\ unicode é\ttab'


def test_recipe_to_dict_is_plain_data(recipe):
    import json

    data = recipe_to_dict(recipe)
    assert json.loads(json.dumps(data)) == data
    assert data["model"]["encoders"]["text"]["config"]["odd key"] == "x"
