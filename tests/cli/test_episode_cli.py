"""``erckit predict MODEL_DIR MEDIA --subtitles|--transcript``: end to end, outputs, bad input without tracebacks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from erckit.cli.main import main
from erckit.data.demo import DEMO_LABELS
from erckit.data.subtitles import read_cues
from tiny_models import build_model, demo_episode, episode_recipe


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model") / "m"
    build_model(episode_recipe(), labels=list(DEMO_LABELS)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory):
    return demo_episode(tmp_path_factory.mktemp("demo"), test_dialogues=3)


def probabilities(path: Path) -> list[list[float]]:
    return [[u["probabilities"][label] for label in DEMO_LABELS]
            for line in path.read_text().splitlines() for u in json.loads(line)["utterances"]]


def test_episode_end_to_end_equals_the_clip_dialogues(model_dir: Path, episode, tmp_path: Path) -> None:
    out, reference = tmp_path / "out.jsonl", tmp_path / "ref.jsonl"
    assert main(["predict", str(model_dir), str(episode.dialogues), "-o", str(reference)]) == 0
    assert main(["predict", str(model_dir), str(episode.video), "--subtitles", str(episode.subtitles["srt"]),
                 "--gap", "1", "-o", str(out)]) == 0
    got, expected = probabilities(out), probabilities(reference)
    assert len(got) == len(expected) == episode.cues
    assert max(abs(a - b) for row, ref in zip(got, expected) for a, b in zip(row, ref)) <= 1e-6
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["episode-001", "episode-002", "episode-003"]
    first = records[0]["utterances"][0]
    cue = read_cues(episode.subtitles["srt"])[0]
    assert (first["id"], first["start"], first["end"], first["speaker"], first["text"]) == ("cue1", cue.start, cue.end, cue.speaker, cue.text)
    assert records[0]["media"] == str(episode.video) and first["missing"] == []


def test_srt_vtt_csv_by_suffix_and_a_timeline(model_dir: Path, episode, tmp_path: Path) -> None:
    from matplotlib.image import imread

    base = ["predict", str(model_dir), str(episode.video), "--subtitles", str(episode.subtitles["vtt"])]
    for suffix in ("srt", "vtt"):
        assert main([*base, "-o", str(tmp_path / f"o.{suffix}")]) == 0
        back = read_cues(tmp_path / f"o.{suffix}")
        source = read_cues(episode.subtitles[suffix])
        assert [(c.start, c.end, c.speaker) for c in back] == [(c.start, c.end, c.speaker) for c in source]
        assert all(c.text.split("\n")[0] == s.text and c.text.split("\n")[1].startswith("[") for c, s in zip(back, source))
    assert main([*base, "-o", str(tmp_path / "o.csv"), "--timeline", str(tmp_path / "t.png"), "--timeline-size", "800x300"]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "o.csv").read_text())))
    assert len(rows) == episode.cues and rows[0]["prediction"] in DEMO_LABELS
    assert imread(tmp_path / "t.png").shape[:2] == (300, 800)
    # --format wins over the suffix.
    assert main([*base, "--format", "srt", "-o", str(tmp_path / "x.jsonl")]) == 0
    assert (tmp_path / "x.jsonl").read_text().startswith("1\n00:00:00,000 --> ")


def test_a_transcript(model_dir: Path, episode, tmp_path: Path, capsys) -> None:
    cues = read_cues(episode.subtitles["srt"])[:4]
    transcript = tmp_path / "t.jsonl"
    transcript.write_text("".join(json.dumps({"start": c.start, "end": c.end, "speaker": c.speaker, "text": c.text}) + "\n" for c in cues))
    assert main(["predict", str(model_dir), str(episode.video), "--transcript", str(transcript), "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert cues[0].speaker in out and "prediction" in out


@pytest.mark.parametrize("case", ["malformed", "latin-1", "past-end-error", "no-cues", "format-without-media", "bad-size"])
def test_bad_input_is_one_line_and_writes_nothing(model_dir: Path, episode, tmp_path: Path, capsys, case: str) -> None:
    subtitles = tmp_path / "s.srt"
    text = episode.subtitles["srt"].read_text()
    extra: list[str] = []
    code, message = 1, None
    if case == "malformed":
        subtitles.write_text(text.replace("00:00:00,000 -->", "00:00:00;000 -->", 1))
        message = "s.srt:2: malformed cue timing"
    elif case == "latin-1":
        subtitles.write_bytes(text.replace(read_cues(episode.subtitles["srt"])[0].speaker + ":", "Zoé:", 1).encode("latin-1"))
        message = "not UTF-8 text (byte 0xe9); give its encoding, e.g. --encoding latin-1"
    elif case == "past-end-error":
        subtitles.write_text(text + "999\n09:00:00,000 --> 09:00:01,000\nA: late\n")
        extra, message = ["--media-policy", "error"], "starts after the media's end"
    elif case == "no-cues":
        subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\n\n")
        message = "no usable cue"
    elif case == "format-without-media":
        subtitles, extra, code = None, ["--format", "srt", "--gap", "2"], 2
        message = "--format srt, --gap: only for a recording with --subtitles, --transcript or --asr"
    else:
        subtitles.write_text(text)
        extra, code, message = ["--timeline", str(tmp_path / "t.png"), "--timeline-size", "big"], 2, "expected WIDTHxHEIGHT"
    source = [str(episode.dialogues)] if subtitles is None else [str(episode.video), "--subtitles", str(subtitles)]
    out = tmp_path / "out.srt"
    assert main(["predict", str(model_dir), *source, "-o", str(out), *extra]) == code
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "t.png").exists()
    if case == "latin-1":
        assert main(["predict", str(model_dir), *source, "-o", str(out), "--encoding", "latin-1"]) == 0
        assert read_cues(out)[0].speaker == "Zoé"


def test_the_worked_example_of_docs_predict_runs(model_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """docs/predict.md's episode commands and Python block, verbatim, where the quick start leaves things
    (the tiny untrained model stands in for runs/quickstart; a smaller demo for the full one)."""
    import re
    import shlex
    import shutil

    import erckit.data.demo as demo
    from matplotlib.image import imread

    doc = (Path(__file__).resolve().parents[2] / "docs" / "predict.md").read_text(encoding="utf-8")
    section = doc[doc.index("### Worked example on the demo data"):doc.index("### Input")]
    commands = [line for line in re.findall(r"^```\n(.*?)^```", section, re.S | re.M)[0].splitlines() if line.startswith("erckit ")]
    python = re.findall(r"^```python\n(.*?)^```", doc[doc.index("### Python"):], re.S | re.M)[0]
    assert len(commands) == 3 and "predict_media" in python
    monkeypatch.chdir(tmp_path)
    shutil.copytree(model_dir, tmp_path / "runs" / "quickstart")
    write_demo = demo.write_demo
    monkeypatch.setattr(demo, "write_demo", lambda out, seed=0, **_: write_demo(out, seed, dialogues={"train": 1, "dev": 1, "test": 2}))
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, (command, capsys.readouterr().err)
    assert imread(tmp_path / "episode.png").shape[:2] == (400, 1200)
    assert len(read_cues(tmp_path / "episode.emotions.srt")) == len(read_cues(tmp_path / "data/demo/episode.srt"))
    exec(compile(python, "docs/predict.md", "exec"), {})
    assert read_cues(tmp_path / "episode.emotions.vtt")[0].text.split("\n")[1].startswith("[")


def test_cue_warnings_are_capped(model_dir: Path, episode, tmp_path: Path, capsys) -> None:
    empty = "".join(f"{n}\n00:09:{n:02d},000 --> 00:09:{n:02d},500\n\n\n" for n in range(1, 26))
    subtitles = tmp_path / "s.srt"
    subtitles.write_text(episode.subtitles["srt"].read_text() + "\n" + empty)
    assert main(["predict", str(model_dir), str(episode.video), "--subtitles", str(subtitles), "-o", str(tmp_path / "o.srt")]) == 0
    err = capsys.readouterr().err
    assert err.count("has no text: skipped") == 20 and "... and 5 more cue warning(s)" in " ".join(err.split())
    assert len(read_cues(tmp_path / "o.srt")) == episode.cues
