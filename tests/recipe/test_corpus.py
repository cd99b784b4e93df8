"""erckit.recipe.corpus: one way from a recipe's [data] table to a corpus, samples and media specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from erckit.data.types import AudioSpec, VideoSpec
from erckit.errors import DataError, ErckitError
from erckit.recipe import DataConfig, load_recipe
from erckit.recipe.corpus import (
    encoder_media, load_corpus, media_resolver, problem_lines, recipe_media, recipe_splits, split_name,
)


def write_split(root: Path, split: str, dialogues: list[list[tuple[str, str, str | None]]], **media: str) -> None:
    lines = []
    for d, utterances in enumerate(dialogues):
        rows = [{"speaker": s, "text": t, **({"label": label} if label is not None else {}), **media} for s, t, label in utterances]
        lines.append(json.dumps({"id": f"{split}{d}", "utterances": rows}))
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


def dataset(tmp_path: Path, test: bool = True) -> Path:
    root = tmp_path / "data"
    write_split(root, "train", [[("A", "hi", "joy"), ("B", "oh", "anger"), ("A", "so", "joy")]])
    write_split(root, "dev", [[("A", "no", "anger")]], audio="missing.wav")  # a problem the reader tolerates
    if test:
        write_split(root, "test", [[("B", "ok", "joy"), ("A", "eh", "anger")]])
    return root


def config(root: Path, **keys) -> DataConfig:
    return DataConfig(dataset="erckit.DialogueJSONL.v1", root=str(root), **keys)


def test_reader_gets_only_its_own_arguments_and_samples_are_what_training_uses(tmp_path):
    data = config(dataset(tmp_path), max_context=2, cache_dir=str(tmp_path / "c"), media_policy="zero", num_workers=0)
    corpus = load_corpus(data)  # the reserved keys (max_context, cache_dir...) never reach the reader
    assert corpus.labels == ("anger", "joy")  # sorted labels found in the data (no labels.json)
    result = recipe_splits(data, corpus)
    assert result.corpus is corpus and result.labels == ["anger", "joy"]
    assert sorted(result.splits) == ["dev", "test", "train"]
    train = result.splits["train"]
    assert [s.label for s in train] == [1, 0, 1]
    assert [len(s.context) for s in train] == [1, 2, 2]  # causal, cut to max_context
    assert list(train[2].speaker_ids) == [2, 1]  # speakers numbered over the whole dialogue
    assert len(result.splits["test"]) == 2
    assert len(result.problems) == 1 and "missing.wav does not exist" in result.problems[0]


def test_label_override_sets_class_indices_and_unknown_or_missing_labels_fail(tmp_path):
    root = dataset(tmp_path)
    assert [s.label for s in recipe_splits(config(root, labels=["joy", "anger", "fear"])).splits["train"]] == [0, 1, 0]
    assert recipe_splits(config(root), labels=["joy", "anger"]).labels == ["joy", "anger"]
    with pytest.raises(DataError, match="label 'anger' is not in the label set"):
        recipe_splits(config(root, labels=["joy", "fear"]))
    write_split(root, "test", [[("A", "unlabelled", None)]])
    with pytest.raises(DataError, match="utterance 0: no label"):  # every split trains or scores
        recipe_splits(config(root))


def test_missing_splits(tmp_path):
    root = dataset(tmp_path, test=False)
    assert recipe_splits(config(root)).splits["test"] == []
    assert recipe_splits(config(dataset(tmp_path), test_split=None)).splits["test"] == []
    with pytest.raises(ErckitError, match="split 'validation' is empty or missing; dev selects the best epoch"):
        recipe_splits(config(root, dev_split="validation"))
    (root / "train.jsonl").write_text("")
    (root / "labels.json").write_text('["joy", "anger"]')
    with pytest.raises(ErckitError, match="split 'train' is empty or missing"):
        recipe_splits(config(root))
    assert split_name(config(root, dev_split="validation"), "dev") == "validation"
    with pytest.raises(ErckitError, match="choose one of: train, dev, test"):
        split_name(config(root), "valid")


class Declares:
    def __init__(self, media):
        self.media = media


def test_media_specs_are_every_encoders_once_in_a_stable_order(tmp_path):
    audio, video = AudioSpec(16_000, 2.0), VideoSpec(4, 64)
    encoders = {"text": Declares(None), "visual": Declares(video), "audio": Declares(audio), "audio2": Declares(audio)}
    assert encoder_media(encoders.values()) == (audio, video)
    assert encoder_media(reversed(list(encoders.values()))) == (audio, video)
    splits = recipe_splits(config(dataset(tmp_path, test=False))).splits
    assert recipe_media(encoders, splits) == {"train": (audio, video), "dev": (audio, video)}  # no test samples
    assert recipe_media({"text": Declares(None)}, splits) == {}


def test_resolver_uses_the_recipes_cache_and_policy(tmp_path):
    resolver = media_resolver(config(tmp_path, cache_dir=str(tmp_path / "cache"), media_policy="skip"), workers=3)
    assert resolver.cache.root == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    assert resolver.policy == "skip" and resolver.workers == 3 and resolver.max_duration is None
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="set data.cache_dir to a writable directory"):
        media_resolver(config(tmp_path, cache_dir=str(tmp_path / "file")))


def test_a_recipe_works_wherever_its_data_table_does(tmp_path):
    root = dataset(tmp_path)
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text(
        f'[data]\ndataset = "erckit.DialogueJSONL.v1"\nroot = "{root}"\nlabels = ["joy", "anger"]\n'
        '[model.encoders.text]\nfactory = "example.BagOfWords.v1"\n[[stages]]\nkind = "supervised"\nencoders = ["text"]\n'
    )
    recipe = load_recipe(recipe_file)
    assert recipe_splits(recipe).labels == recipe_splits(recipe.data).labels == ["joy", "anger"]
    assert load_corpus(recipe).labels == load_corpus(recipe.data).labels


def test_problem_lines():
    assert problem_lines(["a", "b"]) == ["a", "b"]
    assert problem_lines([str(i) for i in range(25)]) == [str(i) for i in range(20)] + ["... and 5 more data problems"]
