"""ERCModel: build from a recipe, save, load back (no pickle), identical logits; clear load errors.

The directory format itself (config.json versions, migration, refusals): test_model_format.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from erckit.errors import ModelLoadError
from erckit.model import ERCModel
from erckit.modelconfig import FORMAT_VERSION
from erckit.recipe.schema import Recipe

LABELS = ["neutral", "joy", "sadness", "anger"]


def _recipe(fuser: bool = True) -> Recipe:
    raw = {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {
            "encoders": {
                "text": {"factory": "example.BagOfWords.v1", "buckets": 64, "dim": 8},
                "ctx": {"factory": "example.BagOfWords.v1", "buckets": 64, "dim": 8, "context": True},
            },
        },
        "stages": [{"kind": "supervised", "encoders": ["text", "ctx"]}],
    }
    if fuser:
        raw["model"]["fuser"] = {"factory": "erckit.ConcatFuser.v1"}
        raw["stages"].append({"kind": "fuse"})
    return Recipe.model_validate(raw)


def _features(batch: int = 5) -> dict:
    torch.manual_seed(1)
    return {n: {"counts": torch.rand(batch, 64)} for n in ("text", "ctx")}


@pytest.mark.parametrize("fuser", [True, False])
def test_save_and_load_give_identical_logits(tmp_path: Path, fuser: bool) -> None:
    torch.manual_seed(0)
    model = ERCModel.from_recipe(_recipe(fuser), LABELS).eval()
    with torch.no_grad():
        expected = model(_features())
    assert expected.shape == (5, 4)
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"config.json", "model.safetensors", "encoders"}
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["labels"] == LABELS and config["anchor"] == "text" and "erckit_version" in config
    assert config["format_version"] == FORMAT_VERSION and config["use_fuser"] == fuser and "recipe" not in config
    assert (tmp_path / "m" / "training_recipe.toml").is_file()
    loaded = ERCModel.from_pretrained(tmp_path / "m")
    assert not loaded.training and loaded.labels == LABELS and loaded.use_fuser == fuser
    with torch.no_grad():
        assert torch.equal(loaded(_features()), expected)


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    model = ERCModel.from_recipe(_recipe(), LABELS)
    model.save_pretrained(tmp_path / "m")
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging or old directories left


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        ERCModel.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json is missing"):
        ERCModel.from_pretrained(tmp_path / "empty")
    model = ERCModel.from_recipe(_recipe(), LABELS)
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        ERCModel.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        ERCModel.from_pretrained(tmp_path / "m")


def test_weights_of_another_recipe_are_refused(tmp_path: Path) -> None:
    ERCModel.from_recipe(_recipe(fuser=False), LABELS).save_pretrained(tmp_path / "small")
    ERCModel.from_recipe(_recipe(fuser=True), LABELS).save_pretrained(tmp_path / "big")
    (tmp_path / "big" / "model.safetensors").write_bytes((tmp_path / "small" / "model.safetensors").read_bytes())
    with pytest.raises(ModelLoadError, match="does not match.*missing"):
        ERCModel.from_pretrained(tmp_path / "big")


@pytest.mark.parametrize("value", ["no", "false", 0, 1])
def test_use_fuser_must_be_a_real_boolean(tmp_path: Path, value) -> None:
    """``bool("no")`` is True: a config saying use_fuser "no" used to load as fused."""
    ERCModel.from_recipe(_recipe(), LABELS).save_pretrained(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["use_fuser"] = value
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"'use_fuser' must be true or false, got " + repr(value)):
        ERCModel.from_pretrained(tmp_path / "m")
    config["use_fuser"] = False
    config_path.write_text(json.dumps(config))
    assert ERCModel.from_pretrained(tmp_path / "m").use_fuser is False


@pytest.mark.parametrize("labels, expected", [
    (["neutral", "joy", "neutral"], r"config.json: 'labels' has duplicate label\(s\) 'neutral'"),
    ([], r"config.json: 'labels' must be a non-empty list"),
    ("joy", r"config.json: 'labels' must be a non-empty list"),
])
def test_bad_labels_in_a_model_config_are_refused(tmp_path: Path, labels, expected) -> None:
    ERCModel.from_recipe(_recipe(), LABELS).save_pretrained(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["labels"] = labels
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=expected):
        ERCModel.from_pretrained(tmp_path / "m")
