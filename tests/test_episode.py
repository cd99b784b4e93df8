"""erckit.episode: one long recording cut by its cues, predicted as the equivalent clip dialogues are."""

from __future__ import annotations

import json
import sys
import warnings
import wave
from pathlib import Path

import pytest
import torch

from erckit.data.demo import DEMO_LABELS
from erckit.data.readers.jsonl import read_dialogue_jsonl
from erckit.data.subtitles import CueWarning, read_cues
from erckit.errors import DataError, ErckitError, MediaError, UsageError
from erckit.model import ERCModel
from erckit.predict import predict_stream
from tiny_models import build_model, demo_episode, episode_recipe


@pytest.fixture(scope="module")
def model() -> ERCModel:
    return build_model(episode_recipe(), labels=list(DEMO_LABELS))


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory):
    return demo_episode(tmp_path_factory.mktemp("demo"))


def table(predictions) -> torch.Tensor:
    return torch.tensor([[u.probabilities[label] for label in DEMO_LABELS] for d in predictions for u in d.utterances])


def srt_copy(tmp_path: Path, episode, edit) -> Path:
    """The episode's SRT with its cue list edited (a list of (start, end, text) in, the same out)."""
    cues = [(c.start, c.end, f"{c.speaker}: {c.text}") for c in read_cues(episode.subtitles["srt"])]
    stamp = lambda s: f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}:{int(s % 60):02d},{round(s * 1000) % 1000:03d}"
    text = "".join(f"{n}\n{stamp(s)} --> {stamp(e)}\n{t}\n\n" for n, (s, e, t) in enumerate(edit(cues), 1))
    path = tmp_path / "edited.srt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["srt", "vtt"])
def test_predictions_equal_the_clip_dialogues(model: ERCModel, episode, kind: str) -> None:
    reference = model.predict(read_dialogue_jsonl(episode.dialogues))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CueWarning)  # a clean episode warns about nothing
        result = model.predict_media(episode.video, subtitles=episode.subtitles[kind], gap=1.0)
    assert [len(d.utterances) for d in result.dialogues] == [len(d.utterances) for d in reference]
    assert all(u.missing == [] and u.modalities_used == ["text", "audio", "visual"] for u in result.utterances())
    assert (table(result.dialogues) - table(reference)).abs().max().item() <= 1e-6
    if kind == "srt":  # without a gap the whole episode is one dialogue: context crosses dialogues, answers change
        whole = model.predict_media(episode.video, subtitles=episode.subtitles[kind])
        assert len(whole.dialogues) == 1 and not torch.allclose(table(whole.dialogues), table(reference), atol=1e-6)


def test_every_span_is_decoded_from_one_open_of_the_file(model: ERCModel, episode, monkeypatch) -> None:
    import erckit.data.media as media

    opened: list[Path] = []
    real = media._open
    monkeypatch.setattr(media, "_open", lambda path: opened.append(Path(path)) or real(path))
    result = model.predict_media(episode.video, subtitles=episode.subtitles["srt"], gap=1.0)
    assert len(result.utterances()) == episode.cues and opened == [episode.video]


def test_timed_stdin_rows_answer_like_the_episode(model: ERCModel, episode) -> None:
    result = model.predict_media(episode.video, subtitles=episode.subtitles["srt"], gap=1.0)
    lines = [
        json.dumps({"dialogue": d.id, "speaker": u.speaker, "text": u.text, "audio": str(u.audio), "video": str(u.video),
                    "start": u.start, "end": u.end})
        for d in result.inputs[:2] for u in d.utterances  # two dialogues: a stream answers one utterance at a time
    ]
    streamed = list(predict_stream(model, lines))
    expected = table(result.dialogues[:2])
    assert torch.allclose(torch.tensor([[p.probabilities[l] for l in DEMO_LABELS] for p in streamed]), expected, atol=1e-6)


def test_written_subtitles_parse_back_with_the_same_times_and_texts(model: ERCModel, episode, tmp_path: Path) -> None:
    result = model.predict_media(episode.video, subtitles=episode.subtitles["vtt"])
    source = read_cues(episode.subtitles["srt"])
    for kind, text in (("srt", result.to_srt()), ("vtt", result.to_vtt())):
        (tmp_path / f"out.{kind}").write_text(text, encoding="utf-8")
        back = read_cues(tmp_path / f"out.{kind}")
        assert [(c.start, c.end, c.speaker) for c in back] == [(c.start, c.end, c.speaker) for c in source]
        for cue, original, p in zip(back, source, result.utterances()):
            words, note = cue.text.split("\n")
            assert words == original.text and note == f"[{p.label} {p.confidence:.2f}]"


def test_timeline_png(model: ERCModel, episode, tmp_path: Path, monkeypatch) -> None:
    from matplotlib.image import imread

    result = model.predict_media(episode.video, subtitles=episode.subtitles["srt"])
    for name, size in (("default", None), ("small", (640, 300))):
        path = result.timeline(tmp_path / f"{name}.png", *([size] if size else []))
        image = imread(path)
        assert image.shape[:2] == ((400, 1200) if size is None else (size[1], size[0]))
        assert image[..., :3].std() > 0.05  # not a blank canvas
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default.png", "small.png"]  # no temp file left
    with pytest.raises(ErckitError, match="too small"):
        result.timeline(tmp_path / "tiny.png", (100, 100))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ErckitError, match=r"--timeline needs matplotlib: pip install 'erckit\[plot\]'"):
        result.timeline(tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists() and not (tmp_path / "tiny.png").exists()


# ------------------------------------------------------------ bad input


def test_cues_past_the_end_of_the_media(model: ERCModel, episode, tmp_path: Path) -> None:
    end = episode.seconds
    path = srt_copy(tmp_path, episode, lambda cues: cues[:3] + [(end - 1.0, end + 5, "A: runs over"), (end + 10, end + 11, "B: after")])
    with pytest.warns(CueWarning) as caught:
        result = model.predict_media(episode.video, subtitles=path)
    messages = [str(w.message) for w in caught]
    assert any(f"{path}:14: cue [{end - 1:.3f} --> {end + 5:.3f}] runs past the media's end" in m for m in messages)
    assert any(f"{path}:18: cue [{end + 10:.3f} --> {end + 11:.3f}] starts after the media's end" in m for m in messages)
    utterances = result.utterances()
    assert len(utterances) == 5 and utterances[3].missing == [] and utterances[4].missing == ["audio", "visual"]
    assert result.cues[3].end == pytest.approx(end, abs=1e-3)
    with pytest.raises(MediaError, match="starts after the media's end.*media policy 'error'"):
        model.predict_media(episode.video, subtitles=path, media_policy="error")


def test_unordered_overlapping_and_empty_cues(model: ERCModel, episode, tmp_path: Path) -> None:
    def scramble(cues):
        first, second, third, *rest = cues[:6]
        return [second, first, (third[0], third[1], ""), (rest[0][0], rest[1][1], rest[0][2]), rest[1]]

    path = srt_copy(tmp_path, episode, scramble)
    with pytest.warns(CueWarning) as caught:
        result = model.predict_media(episode.video, subtitles=path)
    messages = " | ".join(str(w.message) for w in caught)
    assert "has no text: skipped" in messages and "cues sorted by start time" in messages and "both kept" in messages
    source = read_cues(episode.subtitles["srt"])
    assert [p.text for p in result.utterances()] == [source[i].text for i in (0, 1, 3, 4)]
    with pytest.raises(DataError, match="no usable cue"):
        model.predict_media(episode.video, subtitles=srt_copy(tmp_path, episode, lambda cues: [(1, 2, "")]))


def test_a_video_without_audio(model: ERCModel, episode, tmp_path: Path) -> None:
    clip = next(episode.video.parent.glob("media/test*.mp4"))  # the demo's clips have no audio track
    path = tmp_path / "c.srt"
    path.write_text("1\n00:00:00,000 --> 00:00:00,500\nA: hi\n", encoding="utf-8")
    with pytest.warns(CueWarning, match="has no audio stream: every cue is predicted without audio"):
        (p,) = model.predict_media(clip, subtitles=path).utterances()
    assert p.missing == ["audio"] and p.modalities_used == ["text", "visual"]
    with pytest.raises(MediaError, match="has no audio stream"):
        model.predict_media(clip, subtitles=path, media_policy="error")


def test_media_that_is_not_media(model: ERCModel, episode, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="media file not found"):
        model.predict_media(tmp_path / "none.mp4", subtitles=episode.subtitles["srt"])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match="cannot open"):
        model.predict_media(junk, subtitles=episode.subtitles["srt"])
    with pytest.raises(UsageError, match="exactly one of subtitles, transcript or asr"):
        model.predict_media(episode.video, subtitles=episode.subtitles["srt"], transcript=episode.subtitles["srt"])


# ------------------------------------------------------------------- ASR


def test_asr_cues_through_a_tiny_random_whisper(model: ERCModel, episode, tmp_path: Path) -> None:
    from tiny_models import tiny_whisper

    whisper = tiny_whisper(tmp_path / "whisper")
    clip = sorted(episode.video.parent.glob("media/test*.wav"))[0]  # a second of audio: a quick decode
    with wave.open(str(clip)) as handle:
        seconds = handle.getnframes() / handle.getframerate()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CueWarning)  # no video stream; random segments may run past the end
        result = model.predict_media(clip, asr=str(whisper))
    assert result.cues and all(c.speaker == "unknown" and 0 <= c.start < c.end for c in result.cues)
    assert all(c.where.startswith(f"{clip} (asr segment ") for c in result.cues)
    assert len(result.utterances()) == len(result.cues)
    for cue, p in zip(result.cues, result.utterances()):  # a segment the recogniser placed past the end has no media
        assert p.missing == (["visual"] if cue.start < seconds else ["audio", "visual"])


def test_asr_segments_become_cues(episode, monkeypatch) -> None:
    import transformers

    import erckit.episode as module

    calls = []

    def fake_pipeline(task, model, **options):
        def recognise(inputs, return_timestamps):
            calls.append((task, model, inputs["sampling_rate"], inputs["raw"].shape, return_timestamps))
            return {"chunks": [{"timestamp": (0.0, 1.5), "text": " Hello "}, {"timestamp": (2.0, None), "text": "bye"}]}
        return recognise

    monkeypatch.setattr(transformers, "pipeline", fake_pipeline)
    cues = module.transcribe(episode.video, "openai/whisper-tiny")
    total = calls[0][3][0] / 16_000
    assert calls == [("automatic-speech-recognition", "openai/whisper-tiny", 16_000, calls[0][3], True)]
    assert total == pytest.approx(episode.seconds, abs=0.01)
    assert [(c.start, c.end, c.text) for c in cues] == [(0.0, 1.5, "Hello"), (2.0, total, "bye")]


def test_asr_without_transformers_names_the_extra(episode, monkeypatch) -> None:
    from erckit.episode import transcribe
    from erckit.errors import ErckitError

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ErckitError, match=r"--asr needs transformers: pip install 'erckit\[asr\]'"):
        transcribe(episode.video, "openai/whisper-tiny")
