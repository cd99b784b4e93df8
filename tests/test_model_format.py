"""The model directory format: frozen format-1 and format-2 directories keep loading and predicting the
same, the current format (the model's own config + the training recipe beside it) round-trips, and a newer or corrupt
``config.json`` is refused in one line naming the file and the key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from erckit.cli.main import main
from erckit.errors import ErckitError, ModelLoadError
from erckit.model import ERCModel
from erckit.modelconfig import FORMAT_VERSION, TRAINING_RECIPE_FILE, SavedModelConfig
from tiny_models import LABELS, build_model, multimodal_recipe, save_model

FIXTURE = Path(__file__).parent / "fixtures" / "model_format_v1"
FIXTURE_V2 = Path(__file__).parent / "fixtures" / "model_format_v2"  # its dialogues are format 1's
TOLERANCE = 1e-6


def read_dialogues() -> list:
    from erckit.data.readers import read_dialogue_jsonl

    return read_dialogue_jsonl(FIXTURE / "dialogues" / "dialogues.jsonl")


def expected_predictions(path: Path = FIXTURE / "expected_predictions.json") -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_predicts_as_frozen(model: ERCModel, expected_path: Path = FIXTURE / "expected_predictions.json") -> None:
    """Every utterance of the fixture dialogues: same label, same missing media, probabilities within 1e-6."""
    predicted = [u for d in model.predict(read_dialogues()) for u in d.utterances]
    expected = expected_predictions(expected_path)
    assert len(predicted) == len(expected) == 12
    worst = 0.0
    for got, want in zip(predicted, expected):
        assert (got.dialogue_id, got.position, got.label, got.missing) == (
            want["dialogue"], want["position"], want["label"], want["missing"]
        )
        assert list(got.probabilities) == list(want["probabilities"])
        worst = max(worst, *(abs(got.probabilities[k] - p) for k, p in want["probabilities"].items()))
    assert worst <= TOLERANCE


def edit_config(directory: Path, change: Callable[[dict], Any]) -> None:
    """Change config.json in place (``change`` edits the parsed object; what it returns is ignored)."""
    path = directory / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    change(config)
    path.write_text(json.dumps(config), encoding="utf-8")


def copy_of(source: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    shutil.copytree(source, directory)
    return directory


def same_weights(a: ERCModel, b: ERCModel) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def assert_stored_plus_later_defaults(table: dict[str, Any], stored: dict[str, Any]) -> None:
    """``table`` is the stored table plus, at their defaults, the arguments its factory gained since."""
    import inspect

    from erckit.registry import find_component

    assert {key: table[key] for key in stored} == stored
    parameters = inspect.signature(find_component(table["factory"])[1]).parameters
    assert {key: table[key] for key in table.keys() - stored.keys()} == {
        key: parameters[key].default for key in table.keys() - stored.keys()
    }


@pytest.fixture(scope="module")
def v1_model() -> ERCModel:
    return ERCModel.from_pretrained(FIXTURE / "model")


@pytest.fixture(scope="module")
def v2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("v2") / "m", multimodal_recipe())


# ------------------------------------------------------------------ format 1


def test_the_frozen_format_1_directory_loads_and_predicts_the_same(v1_model: ERCModel) -> None:
    assert json.loads((FIXTURE / "model" / "config.json").read_text())["format_version"] == 1
    assert v1_model.labels == ["neutral", "joy", "sadness", "anger"]
    assert v1_model.anchor == "text" and v1_model.use_fuser
    assert_predicts_as_frozen(v1_model)


def test_format_1_is_migrated_from_the_stored_recipe_model_tables(v1_model: ERCModel) -> None:
    stored = json.loads((FIXTURE / "model" / "config.json").read_text())["recipe"]
    config = v1_model.config
    assert config.format_version == FORMAT_VERSION and config.erckit_version == "0.1.0"
    assert config.encoders.keys() == stored["model"]["encoders"].keys()
    for name, component in config.encoders.items():
        assert_stored_plus_later_defaults(component.table(), stored["model"]["encoders"][name])
    # telme.ASF.v1 meant the multi-token fuser until format 3: it is read under its name of today
    assert stored["model"]["fuser"]["factory"] == "telme.ASF.v1"
    assert config.fuser is not None and config.fuser.table() == {**stored["model"]["fuser"], "factory": "erckit.ModalityShift.v1"}
    assert config.preprocessing.max_context is None
    assert v1_model.training_recipe is None  # format 1 kept no training_recipe.toml


def test_training_keys_of_a_format_1_recipe_never_affect_loading(v1_model: ERCModel, tmp_path: Path) -> None:
    """Renamed, removed, retyped or unknown training keys: a schema change cannot break these directories."""
    directory = copy_of(FIXTURE / "model", tmp_path)

    def mangle(config: dict) -> None:
        recipe = config["recipe"]
        recipe["stages"] = [{"kind": "a stage kind no erckit knows", "epochs": "many"}]
        del recipe["runtime"]
        recipe["seed"] = "not a seed"
        recipe["renamed_in_a_later_erckit"] = {"anything": [1, 2]}
        recipe["data"] = {"dataset": "no.Such.v9", "media_policy": 42, "max_context": None, "cache": "renamed"}
        recipe["model"]["a_later_model_key"] = True

    edit_config(directory, mangle)
    loaded = ERCModel.from_pretrained(directory)
    assert loaded.config == v1_model.config and same_weights(loaded, v1_model)


def test_format_1_keeps_data_max_context_as_preprocessing(tmp_path: Path) -> None:
    directory = copy_of(FIXTURE / "model", tmp_path)
    edit_config(directory, lambda c: c["recipe"]["data"].update(max_context=3))
    assert ERCModel.from_pretrained(directory).config.preprocessing.max_context == 3
    edit_config(directory, lambda c: c["recipe"]["data"].update(max_context=0))
    with pytest.raises(ModelLoadError, match=r"config\.json: recipe -> data -> max_context: .*greater than or equal to 1"):
        ERCModel.from_pretrained(directory)


def test_a_bad_format_1_model_table_is_named_where_format_1_keeps_it(tmp_path: Path) -> None:
    directory = copy_of(FIXTURE / "model", tmp_path)
    edit_config(directory, lambda c: c["recipe"]["model"]["encoders"]["audio"].update(max_seconds="long"))
    with pytest.raises(ModelLoadError) as error:
        ERCModel.from_pretrained(directory)
    message = str(error.value)
    assert "\n" not in message
    assert re.search(r"config\.json: recipe -> model -> encoders -> audio -> max_seconds: .*number", message)
    edit_config(directory, lambda c: c.pop("recipe"))
    with pytest.raises(ModelLoadError, match=r"config\.json: 'recipe' must be an object \(format 1 keeps the model in it\), missing"):
        ERCModel.from_pretrained(directory)


def test_a_format_1_model_saved_again_is_the_current_format_and_predicts_the_same(v1_model: ERCModel, tmp_path: Path) -> None:
    v1_model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format_version"] == FORMAT_VERSION and "recipe" not in config
    assert not (tmp_path / "m" / TRAINING_RECIPE_FILE).exists()  # no recipe was known to keep
    again = ERCModel.from_pretrained(tmp_path / "m")
    assert again.config == v1_model.config and same_weights(again, v1_model)
    assert_predicts_as_frozen(again)


# ------------------------------------------------------------------ format 2 (frozen)


def test_the_frozen_format_2_directory_loads_and_predicts_the_same() -> None:
    """Its fuser was ``telme.ASF.v1`` when it was saved; that network is ``erckit.ModalityShift.v1`` now."""
    stored = json.loads((FIXTURE_V2 / "model" / "config.json").read_text())
    assert stored["format_version"] == 2 and stored["fuser"]["factory"] == "telme.ASF.v1"
    model = ERCModel.from_pretrained(FIXTURE_V2 / "model")
    assert model.config.format_version == FORMAT_VERSION
    assert model.config.fuser is not None and model.config.fuser.factory == "erckit.ModalityShift.v1"
    assert model.config.fuser.args == {k: v for k, v in stored["fuser"].items() if k != "factory"}
    assert type(model.fuser).__name__ == "ModalityShift"
    assert_predicts_as_frozen(model, FIXTURE_V2 / "expected_predictions.json")


def test_a_format_2_model_saved_again_names_the_renamed_fuser(tmp_path: Path) -> None:
    ERCModel.from_pretrained(FIXTURE_V2 / "model").save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format_version"] == FORMAT_VERSION and config["fuser"]["factory"] == "erckit.ModalityShift.v1"
    assert "telme.ASF.v1" not in json.dumps(config)
    assert_predicts_as_frozen(ERCModel.from_pretrained(tmp_path / "m"), FIXTURE_V2 / "expected_predictions.json")


# ------------------------------------------------------------------ the current format


def test_format_2_holds_the_model_config_and_the_recipe_beside_it(v2_dir: Path) -> None:
    config = json.loads((v2_dir / "config.json").read_text())
    assert list(config) == [
        "format_version", "erckit_version", "labels", "anchor", "use_fuser", "encoders", "fuser",
        "preprocessing", "components",
    ]
    assert config["format_version"] == FORMAT_VERSION and config["labels"] == LABELS and config["anchor"] == "text"
    assert config["use_fuser"] is True and config["preprocessing"] == {"max_context": None}
    # Resolved tables: the factories' defaults are written out (LogMelAudio's sample_rate, the fuser's dropout).
    assert config["encoders"]["audio"] == {
        "factory": "erckit.LogMelAudio.v1", "sample_rate": 16000, "n_mels": 16, "dim": 16, "layers": 1, "heads": 2,
        "max_seconds": 10.0,
    }
    assert config["fuser"] == {"factory": "erckit.ConcatFuser.v1", "hidden": 16, "dropout": 0.1}
    assert config["components"] == {
        "example.BagOfWords.v1": "erckit-example 0.1.0",
        "erckit.LogMelAudio.v1": "erckit 0.1.0",
        "erckit.ConcatFuser.v1": "erckit 0.1.0",
    }
    assert "stages" not in json.dumps(config) and "runtime" not in config
    recipe = tomllib.loads((v2_dir / TRAINING_RECIPE_FILE).read_text(encoding="utf-8"))
    assert [s["kind"] for s in recipe["stages"]] == ["erckit.Supervised.v1", "erckit.Fuse.v1"]
    assert recipe["model"]["encoders"]["audio"]["n_mels"] == 16


def test_format_2_round_trips(v2_dir: Path) -> None:
    built = build_model(multimodal_recipe())
    loaded = ERCModel.from_pretrained(v2_dir)
    assert loaded.config == built.config and same_weights(loaded, built)
    torch.manual_seed(0)
    features = {"text": {"counts": torch.rand(3, 64)}, "audio": {"mel": torch.rand(3, 20, 16), "lengths": torch.tensor([20, 9, 1])}}
    with torch.no_grad():
        assert torch.equal(loaded(features), built(features))


def test_the_training_recipe_cannot_affect_loading(v2_dir: Path, tmp_path: Path) -> None:
    reference = ERCModel.from_pretrained(v2_dir)
    deleted = copy_of(v2_dir, tmp_path / "deleted")
    (deleted / TRAINING_RECIPE_FILE).unlink()
    model = ERCModel.from_pretrained(deleted)
    assert model.config == reference.config and same_weights(model, reference) and model.training_recipe is None
    for content in (b"[[stages]]\nkind = 'renamed'\nepochs = 'x'\n", b"not toml at all = = =", b"\xff\xfe\x00"):
        garbage = copy_of(v2_dir, tmp_path / f"garbage{len(content)}")
        (garbage / TRAINING_RECIPE_FILE).write_bytes(content)
        assert ERCModel.from_pretrained(garbage).config == reference.config
    fifo = copy_of(v2_dir, tmp_path / "fifo")
    (fifo / TRAINING_RECIPE_FILE).unlink()
    os.mkfifo(fifo / TRAINING_RECIPE_FILE)  # never opened: it would block
    assert ERCModel.from_pretrained(fifo).training_recipe is None


def test_saving_a_loaded_model_keeps_its_training_recipe(v2_dir: Path, tmp_path: Path) -> None:
    ERCModel.from_pretrained(v2_dir).save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / TRAINING_RECIPE_FILE).read_bytes() == (v2_dir / TRAINING_RECIPE_FILE).read_bytes()


def test_from_config_builds_the_model_a_config_describes(v2_dir: Path) -> None:
    config = json.loads((v2_dir / "config.json").read_text())
    model = ERCModel.from_config(config)
    assert isinstance(model.config, SavedModelConfig) and model.labels == LABELS
    assert sorted(model.encoders) == ["audio", "text"] and model.fuser is not None and model.use_fuser
    assert model.training_recipe is None
    small = ERCModel.from_config({"labels": ["a", "b"], "anchor": "t", "encoders": {"t": {"factory": "example.BagOfWords.v1"}}})
    assert small.fuser is None and not small.use_fuser
    assert small.config.encoders["t"].args == {"buckets": 1024, "dim": 64, "context": False}
    with pytest.raises(ErckitError, match=r"encoders -> t -> buckets: .*integer"):
        ERCModel.from_config({"labels": ["a"], "anchor": "t", "encoders": {"t": {"factory": "example.BagOfWords.v1", "buckets": "x"}}})
    with pytest.raises(ErckitError, match=r"model config: anchor 'x' is not one of the encoders \(t\)"):
        ERCModel.from_config({"labels": ["a"], "anchor": "x", "encoders": {"t": {"factory": "example.BagOfWords.v1"}}})
    with pytest.raises(ErckitError, match="this model has no fuser"):
        small.use_fuser = True


# ------------------------------------------------------------- refused in one line


def test_a_newer_format_is_refused_naming_both_versions(v2_dir: Path, tmp_path: Path, capsys) -> None:
    directory = copy_of(v2_dir, tmp_path)
    # A later format may change anything else: the version is read first.
    (directory / "config.json").write_text(
        json.dumps({"format_version": FORMAT_VERSION + 1, "erckit_version": "9.0.0", "model": {"whatever": 1}}), encoding="utf-8"
    )
    expected = (
        f"{directory / 'config.json'}: made by erckit 9.0.0 (model format {FORMAT_VERSION + 1}); this erckit 0.1.0 "
        f"reads formats up to {FORMAT_VERSION}; "
        "upgrade erckit (pip install -U erckit)"
    )
    with pytest.raises(ModelLoadError) as error:
        ERCModel.from_pretrained(directory)
    assert str(error.value) == expected
    dialogues = tmp_path / "in.jsonl"
    dialogues.write_text('{"id": "d", "utterances": [{"speaker": "A", "text": "hi"}]}\n', encoding="utf-8")
    assert main(["predict", str(directory), str(dialogues)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"error: {expected}\n"


def _replace(key: str, value: Any) -> Callable[[dict], None]:
    return lambda c: c.update({key: value})


CORRUPT: list[tuple[str, Callable[[Path], None], str]] = [
    ("bad-json", lambda d: (d / "config.json").write_text('{"format_version": 2,', encoding="utf-8"),
     r"config\.json: not valid JSON"),
    ("format-version-string", lambda d: edit_config(d, _replace("format_version", "x")),
     r"config\.json: 'format_version' must be an integer \(the model format\), got 'x'"),
    ("format-version-true", lambda d: edit_config(d, _replace("format_version", True)),
     r"config\.json: 'format_version' must be an integer \(the model format\), got True"),
    ("format-version-float", lambda d: edit_config(d, _replace("format_version", 2.0)),
     r"config\.json: 'format_version' must be an integer \(the model format\), got 2\.0"),
    ("format-version-0", lambda d: edit_config(d, _replace("format_version", 0)),
     rf"config\.json: 'format_version' 0 is not a model format \(erckit wrote 1 to {FORMAT_VERSION}\)"),
    ("format-version-missing", lambda d: edit_config(d, lambda c: c.pop("format_version")),
     r"config\.json: missing 'format_version'; is this an erckit model directory\?"),
    ("encoders-not-a-table", lambda d: edit_config(d, _replace("encoders", "text")),
     r"config\.json: encoders: must be an object, got 'text'"),
    ("encoders-a-list", lambda d: edit_config(d, _replace("encoders", [{"factory": "example.BagOfWords.v1"}])),
     r"config\.json: encoders: must be an object, got \["),
    ("encoder-not-a-table", lambda d: edit_config(d, lambda c: c["encoders"].update(audio="erckit.LogMelAudio.v1")),
     r"config\.json: encoders -> audio: must be an object \(a component table with 'factory'\), got 'erckit\.LogMelAudio\.v1'"),
    ("encoder-without-factory", lambda d: edit_config(d, lambda c: c["encoders"]["audio"].pop("factory")),
     r"config\.json: encoders -> audio -> factory: required key is missing"),
    ("unknown-key", lambda d: edit_config(d, _replace("recipe", {"seed": 0})),
     rf"config\.json: recipe: unknown key \(model format {FORMAT_VERSION} has: format_version, erckit_version, labels, anchor, "
     r"use_fuser, encoders, fuser, preprocessing, components\)"),
    ("unknown-preprocessing-key", lambda d: edit_config(d, lambda c: c["preprocessing"].update(context=2)),
     rf"config\.json: preprocessing -> context: unknown key \(model format {FORMAT_VERSION} has: max_context\)"),
    ("max-context-string", lambda d: edit_config(d, lambda c: c["preprocessing"].update(max_context="5")),
     r"config\.json: preprocessing -> max_context: must be an integer, got '5'"),
    ("labels-not-strings", lambda d: edit_config(d, _replace("labels", ["joy", 3])),
     r"config\.json: 'labels' must be a non-empty list of non-empty strings"),
    ("anchor-not-an-encoder", lambda d: edit_config(d, _replace("anchor", "video")),
     r"config\.json: anchor 'video' is not one of the encoders \(text, audio\)"),
    ("use-fuser-without-fuser", lambda d: edit_config(d, _replace("fuser", None)),
     r"config\.json: use_fuser is true but the model has no fuser"),
    ("components-not-strings", lambda d: edit_config(d, _replace("components", {"erckit.ConcatFuser.v1": 1})),
     r"config\.json: components -> erckit\.ConcatFuser\.v1: must be a string, got 1"),
    ("unknown-factory", lambda d: edit_config(d, lambda c: (
        c["encoders"]["text"].update(factory="example.BagOfWords.v7"),
        c["components"].update({"example.BagOfWords.v7": "erckit-example 9.9"}))),
     r"config\.json: encoders -> text -> factory: made with erckit-example 9\.9, not installed here: "
     r"unknown encoder 'example\.BagOfWords\.v7'\. Did you mean 'example\.BagOfWords\.v1'\? Available: "),
    ("unknown-argument", lambda d: edit_config(d, lambda c: c["fuser"].update(hiden=3)),
     r"config\.json: fuser -> hiden: unknown argument of erckit\.ConcatFuser\.v1\. Did you mean 'hidden'\?"),
    ("argument-of-wrong-type", lambda d: edit_config(d, lambda c: c["encoders"]["audio"].update(n_mels="many")),
     r"config\.json: encoders -> audio -> n_mels: .*integer"),
]


@pytest.mark.parametrize("case, damage, message", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_a_corrupt_config_is_refused_in_one_line(case, damage, message, v2_dir: Path, tmp_path: Path) -> None:
    directory = copy_of(v2_dir, tmp_path)
    damage(directory)
    with pytest.raises(ModelLoadError) as error:
        ERCModel.from_pretrained(directory)
    text = str(error.value)
    assert "\n" not in text and text.startswith(str(directory / "config.json"))
    assert re.search(message, text), text


def test_reading_a_model_config_imports_no_torch() -> None:
    """``erckit.modelconfig`` checks a config (every factory's signature included) without torch."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from erckit.modelconfig import read_model_config\n"
        f"path = Path({str(FIXTURE / 'model' / 'config.json')!r})\n"
        "config = read_model_config(json.loads(path.read_text()), path)\n"
        "assert sorted(config.encoders) == ['audio', 'text', 'visual'], config\n"
        "print(sorted(m for m in ('torch', 'transformers', 'timm', 'av', 'torchaudio') if m in sys.modules))\n"
    )
    # Only the plugin the fixture uses: what other plugins import at registration is theirs to keep light.
    env = {**os.environ, "ERCKIT_DISABLE_PLUGIN_AUTOLOAD": "1", "ERCKIT_PLUGINS": "telme"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]", result.stderr
