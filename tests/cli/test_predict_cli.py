"""``erckit predict``: formats, broken input, output paths, run directories, live streaming over a pipe."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from erckit.cli.main import main
from tiny_models import LABELS, save_model

DIALOGUES = [
    {"id": "d1", "utterances": [{"speaker": "Ross", "text": "we were on a break", "label": "anger"},
                                {"speaker": "Rachel", "text": "", "label": "sarcasm"}]},
    {"utterances": [{"speaker": "Gunther", "text": "coffee?", "extra_note": None}]},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "m")


def write_input(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def good_input(tmp_path: Path) -> Path:
    rows = [dict(DIALOGUES[0]), {"utterances": [{"speaker": "Gunther", "text": "coffee?"}]}]
    return write_input(tmp_path / "in.jsonl", [json.dumps(r) for r in rows])


def test_jsonl_output_keeps_the_input_structure(model_dir: Path, good_input: Path, capsys) -> None:
    assert main(["predict", str(model_dir), str(good_input)]) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == ["d1", "in-2"]
    first = records[0]["utterances"][1]
    assert first["speaker"] == "Rachel" and first["label"] == "sarcasm" and first["text"] == ""
    assert first["prediction"] in LABELS and set(first["probabilities"]) == set(LABELS)
    assert first["modalities"] == ["text"] and first["missing"] == []


def test_csv_and_table(model_dir: Path, good_input: Path, capsys) -> None:
    assert main(["predict", str(model_dir), str(good_input), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["dialogue"], r["position"], r["gold"]) for r in rows] == [("d1", "0", "anger"), ("d1", "1", "sarcasm"), ("in-2", "0", "")]
    assert all(r["prediction"] in LABELS and float(r[f"p_{r['prediction']}"]) == float(r["confidence"]) for r in rows)
    assert main(["predict", str(model_dir), str(good_input), "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert "Gunther" in out and "prediction" in out and "sarcasm" in out


def test_broken_line_fails_before_any_output(model_dir: Path, tmp_path: Path, capsys) -> None:
    source = write_input(tmp_path / "in.jsonl", [json.dumps(DIALOGUES[0]), '{"id": "x", "utterances": [', json.dumps({"utterances": []})])
    out_file = tmp_path / "out.jsonl"
    assert main(["predict", str(model_dir), str(source), "-o", str(out_file)]) == 1
    captured = capsys.readouterr()
    assert f"{source}:2: invalid JSON" in captured.err
    assert captured.out == "" and not out_file.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_skip_errors_processes_the_rest(model_dir: Path, tmp_path: Path, capsys) -> None:
    source = write_input(tmp_path / "in.jsonl", [json.dumps(DIALOGUES[0]), "not json", json.dumps(DIALOGUES[1]),
                                                 "", json.dumps({"id": "ok", "utterances": [{"speaker": "A", "text": "fine"}]})])
    assert main(["predict", str(model_dir), str(source), "--skip-errors"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["id"] for line in captured.out.splitlines()] == ["d1", "ok"]
    assert f"{source}:2: invalid JSON" in captured.err
    assert f"{source}:3: utterance 0: unknown key(s) extra_note" in captured.err
    assert "2 input line(s) skipped" in captured.err


def test_output_file_is_written_atomically(model_dir: Path, good_input: Path, tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "out.jsonl"
    out_file.write_text("old content\n")
    assert main(["predict", str(model_dir), str(good_input), "-o", str(out_file)]) == 0
    assert capsys.readouterr().out == ""
    assert len(out_file.read_text().splitlines()) == 2 and "old content" not in out_file.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_output_in_a_missing_directory(model_dir: Path, good_input: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "absent" / "out.jsonl"
    assert main(["predict", str(model_dir), str(good_input), "-o", str(target)]) == 1
    assert f"output directory {tmp_path / 'absent'} does not exist" in capsys.readouterr().err


def test_bad_model_directories(model_dir: Path, good_input: Path, tmp_path: Path, capsys) -> None:
    assert main(["predict", str(tmp_path / "nowhere"), str(good_input)]) == 1
    assert "nowhere does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), str(good_input)]) == 1
    assert "config.json is missing" in capsys.readouterr().err


def test_run_directory_and_missing_input(model_dir: Path, good_input: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    save_model(run / "model")
    assert main(["predict", str(run), str(good_input), "--batch-size", "1", "--precision", "bf16"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["predict", str(run), str(tmp_path / "absent.jsonl")]) == 1
    assert "file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        main(["predict", str(run), str(good_input), "--batch-size", "0"])
    assert exit.value.code == 2


@pytest.mark.slow  # a fresh interpreter importing torch: seconds, not milliseconds
def test_streaming_over_a_pipe_is_live(model_dir: Path) -> None:
    """Each line's prediction comes back before the next line is sent."""
    process = subprocess.Popen(
        [sys.executable, "-m", "erckit", "predict", str(model_dir), "-", "--skip-errors"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    try:
        turns = [("live", "Monica", "welcome to the party"), ("other", "Chandler", "could this BE any later"),
                 ("live", "Joey", "pizza!")]
        answers = []
        for dialogue, speaker, text in turns:
            process.stdin.write(json.dumps({"dialogue": dialogue, "speaker": speaker, "text": text}) + "\n")
            process.stdin.flush()
            answers.append(json.loads(process.stdout.readline()))  # blocks until this very line is answered
        process.stdin.write("{broken\n")
        process.stdin.write(json.dumps({"dialogue": "live", "speaker": "Ross", "text": "hi"}) + "\n")
        process.stdin.close()
        last = json.loads(process.stdout.readline())
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert [(a["dialogue"], a["position"], a["text"]) for a in answers] == [
        ("live", 0, "welcome to the party"), ("other", 0, "could this BE any later"), ("live", 1, "pizza!")]
    assert all(a["prediction"] in LABELS for a in answers)
    assert (last["dialogue"], last["position"]) == ("live", 2)
    assert "<stdin>:4: invalid JSON" in process.stderr.read()
