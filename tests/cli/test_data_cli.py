from __future__ import annotations

import json
from pathlib import Path

import pytest

from erckit.cli.main import main

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"


def test_data_demo_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert main(["data", "demo", str(out), "--seed", "2"]) == 0
    assert "wrote demo data set" in capsys.readouterr().err
    assert json.loads((out / "labels.json").read_text()) == ["neutral", "joy", "sadness", "anger"]
    assert main(["data", "stats", str(out), "--split", "dev", "--no-probe"]) == 0
    captured = capsys.readouterr().out
    assert "dialogues" in captured and "15" in captured and "label anger" in captured
    assert main(["data", "stats", str(out / "test.jsonl")]) == 0
    assert "test" in capsys.readouterr().out


def test_data_stats_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "utterances": [{"speaker": "A"}]}\n')
    assert main(["data", "stats", str(bad)]) == 1
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "bad.jsonl:1: utterance 0: missing 'text'" in err and "Traceback" not in err
    assert main(["data", "stats", str(tmp_path / "nothing")]) == 1
    assert "no such file or directory" in " ".join(capsys.readouterr().err.split())


def test_data_prepare_from_recipe(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from erckit.data.demo import write_demo

    root = tmp_path / "demo"
    write_demo(root, seed=0, dialogues={"train": 2, "dev": 1, "test": 1}, no_audio=0.0, no_video=0.0)
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f'[data]\ndataset = "erckit.DialogueJSONL.v1"\nroot = "{root}"\ncache_dir = "{tmp_path / "cache"}"\n'
        + _MODEL_AND_STAGES
    )
    args = ["data", "prepare", str(recipe)]
    assert main(args) == 0, capsys.readouterr().err
    first = capsys.readouterr()
    assert "decoded" in first.out and "AudioSpec(sample_rate=16000, max_seconds=10.0)" in " ".join(first.err.split())
    utterances = sum(1 for split in ("train", "dev", "test") for line in (root / f"{split}.jsonl").read_text().splitlines()
                     for _ in json.loads(line)["utterances"])
    assert f"{utterances} decoded now, 0 already in the cache" in " ".join(first.err.split())
    assert main(args) == 0
    assert any((tmp_path / "cache").rglob("*.safetensors"))
    second = capsys.readouterr()
    # second run: everything comes from the cache (decoded column 0)
    rows = [line for line in second.out.splitlines() if line.strip().startswith("│")]
    assert rows and rows[-1].split("│")[1].strip() == "0"
    assert f"0 decoded now, {utterances} already in the cache" in " ".join(second.err.split())


def test_data_prepare_refuses_its_old_media_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[data]\ndataset = "erckit.DialogueJSONL.v1"\nroot = "{tmp_path}"\n' + _MODEL_AND_STAGES)
    assert main(["data", "prepare", str(recipe), "--frames", "2", "--size", "32"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "--frames, --size: no longer options" in err and "encoders declare the media" in err and "Traceback" not in err


def test_prepare_fills_exactly_what_training_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    """After `data prepare` on the quick start, its training (the same code path, 1 epoch per stage
    on a small demo) finds every medium in the cache: no decode at all, every media job a hit."""
    from erckit.data import media
    from erckit.data.pipeline import MediaResolver
    from erckit.model import ERCModel
    from erckit.recipe import load_recipe
    from erckit.recipe.corpus import media_resolver, recipe_media, recipe_splits

    monkeypatch.setenv("DEMO_ROOT", str(tmp_path / "demo"))
    overrides = [f'data.cache_dir="{tmp_path / "cache"}"', "data.train_dialogues=4", "data.dev_dialogues=2",
                 "data.test_dialogues=2", "stages.teacher.epochs=1", "stages.students.epochs=1", "stages.fusion.epochs=1"]
    sets = [part for override in overrides for part in ("--set", override)]
    assert main(["data", "prepare", str(QUICKSTART), *sets]) == 0, capsys.readouterr().err
    prepared = " ".join(capsys.readouterr().err.split())
    assert "VideoSpec(num_frames=4, size=64)" in prepared and "AudioSpec(sample_rate=16000, max_seconds=2.0)" in prepared

    # The media step alone, with what the encoders declare: all hits. (A miss would decode and
    # fill the cache, but it also fails here, so training below sees what prepare left.)
    recipe = load_recipe(QUICKSTART, overrides)
    data = recipe_splits(recipe)
    plan = recipe_media(ERCModel.from_recipe(recipe, data.labels).encoders, data.splits)
    assert sorted(plan) == ["dev", "test", "train"] and all(len(specs) == 2 for specs in plan.values())
    resolver = media_resolver(recipe)
    reports = [resolver.prepare(data.splits[split], specs, progress=False) for split, specs in plan.items()]
    assert sum(r.cached for r in reports) > 0 and sum(r.decoded for r in reports) == 0

    # And the training run: every medium any stage asks for is a cache hit; nothing is decoded.
    decodes: list[str] = []
    real_load_many, real_prepare = media.load_many, MediaResolver.prepare
    monkeypatch.setattr(media, "load_many", lambda path, *a, **k: decodes.append(str(path)) or real_load_many(path, *a, **k))
    seen: list = []
    monkeypatch.setattr(MediaResolver, "prepare", lambda self, *a, **k: seen.append(real_prepare(self, *a, **k)) or seen[-1])
    args = ["train", str(QUICKSTART), "-o", str(tmp_path / "run"), "--device", "cpu", "--no-progress", *sets]
    assert main(args) == 0, capsys.readouterr().err
    assert seen and sum(r.cached for r in seen) > 0
    assert [r.decoded for r in seen] == [0] * len(seen) and decodes == []


# A minimal model/stages section so the shared recipe loader accepts the recipe.
_MODEL_AND_STAGES = """
[model.encoders.audio]
factory = "erckit.LogMelAudio.v1"

[[stages]]
kind = "supervised"
encoders = ["audio"]
"""
