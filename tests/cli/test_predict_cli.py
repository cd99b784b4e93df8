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


# ------------------------------------------------------- hostile text, NaN, missing media

HOSTILE = "\x1b]0;pwned\x07 hello \x1b[2J [red]x[/]"  # retitles the window, clears the screen, rich markup


def hostile_input(tmp_path: Path) -> Path:
    row = {"id": "d\x1b[2J[bold]1[/]", "utterances": [{"speaker": "Ross\x1b]0;pwned\x07", "text": HOSTILE, "label": "[red]x[/]"}]}
    return write_input(tmp_path / "hostile.jsonl", [json.dumps(row)])


def assert_no_control_sequences(text: str) -> None:
    assert "\x1b]" not in text and "\x07" not in text and "\x1b[2J" not in text and "pwned" not in text


@pytest.mark.parametrize("to_file", [False, True])
def test_table_output_strips_control_sequences_and_shows_markup_literally(model_dir: Path, tmp_path: Path, capsys, to_file: bool) -> None:
    source = hostile_input(tmp_path)
    args = ["predict", str(model_dir), str(source), "--format", "table"]
    if to_file:
        args += ["-o", str(tmp_path / "out.txt")]
    assert main(args) == 0
    shown = (tmp_path / "out.txt").read_text() if to_file else capsys.readouterr().out
    assert_no_control_sequences(shown)
    assert "[red]x[/]" in shown and "hello" in shown  # the user's text, as typed
    assert "[bold]1[/]" in shown  # the dialogue id's markup is not interpreted either


def test_table_on_a_terminal_strips_control_sequences(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from erckit.cli import console as ui

    screen = io.StringIO()
    monkeypatch.setattr(ui, "out", Console(file=screen, force_terminal=True, color_system="truecolor", width=200))
    assert main(["predict", str(model_dir), str(hostile_input(tmp_path)), "--format", "table"]) == 0
    shown = screen.getvalue()
    assert "\x1b[" in shown  # it is a terminal: rich's own colours are there
    assert_no_control_sequences(shown)
    assert "[red]x[/]" in shown


def test_live_table_strips_control_sequences(model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    line = json.dumps({"dialogue": "live\x1b[2J", "speaker": "Ross\x1b]0;pwned\x07[red]x[/]", "text": HOSTILE})
    monkeypatch.setattr(sys, "stdin", io.StringIO(line + "\n"))
    assert main(["predict", str(model_dir), "-", "--format", "table"]) == 0
    shown = capsys.readouterr().out
    assert_no_control_sequences(shown)
    assert "Ross[red]x[/]" in shown


def nan_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's output turns NaN (as broken weights would make it), below any check of the model itself."""
    from erckit.predict import Predictor

    run = Predictor.run

    def broken(self, samples):
        probabilities, present = run(self, samples)
        probabilities[-1] = float("nan")
        return probabilities, present

    monkeypatch.setattr(Predictor, "run", broken)


@pytest.mark.parametrize("format", ["jsonl", "csv", "table"])
def test_nan_probabilities_are_refused_before_any_output(model_dir: Path, good_input: Path, tmp_path: Path, capsys,
                                                         monkeypatch: pytest.MonkeyPatch, format: str) -> None:
    nan_probabilities(monkeypatch)
    assert main(["predict", str(model_dir), str(good_input), "--format", format]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # not even the dialogues before the broken one
    assert captured.err.count("\n") == 1 and "non-finite probabilities" in captured.err
    assert "dialogue 'in-2', utterance 0" in captured.err  # names the utterance
    assert main(["predict", str(model_dir), str(good_input), "-o", str(tmp_path / "out.jsonl")]) == 1
    assert not (tmp_path / "out.jsonl").exists()


def test_nan_probabilities_stop_the_live_stream(model_dir: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    nan_probabilities(monkeypatch)
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"dialogue": "live", "speaker": "A", "text": "hi"}) + "\n"))
    assert main(["predict", str(model_dir), "-"]) == 1
    captured = capsys.readouterr()
    assert "NaN" not in captured.out and captured.out == ""
    assert "dialogue 'live', utterance 0" in captured.err and "non-finite" in captured.err


def test_jsonl_writer_never_writes_nan() -> None:
    from erckit.cli.predict import write_jsonl
    from erckit.data.types import Dialogue, Utterance
    from erckit.predict import DialoguePrediction, UtterancePrediction

    turn = {"speaker": "A", "text": "hi"}
    prediction = UtterancePrediction("d", 0, "A", "hi", "joy", {"joy": float("nan")}, ["text"])
    with pytest.raises(ValueError):
        write_jsonl(io.StringIO(), [({"utterances": [turn]}, Dialogue("d", (Utterance("A", "hi"),)))],
                    [DialoguePrediction("d", [prediction])])


def test_missing_media_warns_once_per_file_in_file_and_stdin_mode(model_dir: Path, tmp_path: Path, capsys,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # stdin media paths are relative to the current directory, file ones to the file
    turns = [{"speaker": "A", "text": "hi", "audio": "gone.wav"}, {"speaker": "B", "text": "yo", "audio": "gone.wav"},
             {"speaker": "A", "text": "ok", "video": "gone.mp4"}]
    source = write_input(tmp_path / "in.jsonl", [json.dumps({"id": "d", "utterances": turns})])
    assert main(["predict", str(model_dir), str(source)]) == 0
    file_mode = capsys.readouterr().err
    live = "".join(json.dumps({"dialogue": "d", **turn}) + "\n" for turn in turns)
    monkeypatch.setattr(sys, "stdin", io.StringIO(live))
    assert main(["predict", str(model_dir), "-"]) == 0
    stdin_mode = capsys.readouterr().err
    for err, first_audio, first_video in ((file_mode, f"{source}:1: utterance 0", f"{source}:1: utterance 2"),
                                          (stdin_mode, "<stdin>:1", "<stdin>:3")):
        assert err.count(f"audio file {tmp_path / 'gone.wav'} does not exist") == 1, err
        assert err.count(f"video file {tmp_path / 'gone.mp4'} does not exist") == 1, err
        assert f"{first_audio}: audio file" in err and f"{first_video}: video file" in err


def test_piped_table_wraps_only_the_text(model_dir: Path, tmp_path: Path, capsys) -> None:
    speaker = "Dr. Bartholomew Longname-Smythe"
    row = {"id": "dialogue-with-a-rather-long-identifier", "utterances": [{"speaker": speaker, "text": "word " * 200}]}
    assert main(["predict", str(model_dir), str(write_input(tmp_path / "in.jsonl", [json.dumps(row)])), "--format", "table"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 160
    assert sum("dialogue-with-a-rather-long-identifier" in line for line in lines) == 1
    assert sum(speaker in line for line in lines) == 1
