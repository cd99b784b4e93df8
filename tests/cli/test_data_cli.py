from __future__ import annotations

import json
from pathlib import Path

import pytest

from erckit.cli.main import main


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
    args = ["data", "prepare", str(recipe), "--frames", "2", "--size", "32"]
    assert main(args) == 0, capsys.readouterr().err
    first = capsys.readouterr().out
    assert "decoded" in first
    assert main(args) == 0
    assert any((tmp_path / "cache").rglob("*.safetensors"))
    second = capsys.readouterr().out
    # second run: everything comes from the cache (decoded column 0)
    rows = [line for line in second.splitlines() if line.strip().startswith("│")]
    assert rows and rows[-1].split("│")[1].strip() == "0"


# A minimal model/stages section so the shared recipe loader accepts the recipe.
_MODEL_AND_STAGES = """
[model.encoders.audio]
factory = "erckit.LogMelAudio.v1"

[[stages]]
kind = "supervised"
encoders = ["audio"]
"""
