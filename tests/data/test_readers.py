from __future__ import annotations

import os

import json
from pathlib import Path

import pytest

from erckit.data.readers import (
    EMORYNLP_LABELS,
    IEMOCAP_LABELS,
    MELD_LABELS,
    fix_text,
    iemocap_speaker,
    read_dialogue_jsonl,
    read_emorynlp,
    read_iemocap,
    read_jsonl_dataset,
    read_meld,
)
from erckit.data.types import Dialogue, Utterance, make_samples
from erckit.errors import DataError

# MELD text CSVs: $MELD_DIR, else the shared data folder beside the repository.
MELD_REAL = Path(os.environ.get("MELD_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data" / "meld")
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def _meld_row(n: int, text: str, speaker: str, emotion: str, dia: int, utt: int) -> str:
    return f'{n},"{text}",{speaker},{emotion},neutral,{dia},{utt},1,1,"00:00:01,000","00:00:02,000"\n'


# ---------------------------------------------------------------- MELD
@pytest.mark.skipif(not MELD_REAL.is_dir(), reason="MELD CSVs not available")
def test_meld_real_csv_counts() -> None:
    corpus = read_meld(MELD_REAL)
    assert corpus.labels == MELD_LABELS == ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
    measured = {s: (sum(len(d) for d in corpus.split(s)), len(corpus.split(s))) for s in ("train", "dev", "test")}
    # Train has 1038 dialogues: Dialogue_ID 60 does not occur in the official CSV.
    assert measured == {"train": (9989, 1038), "dev": (1109, 114), "test": (2610, 280)}
    dialogue = corpus.split("train")[1]
    assert dialogue.id == "dia1" and dialogue.utterances[0].id == "dia1_utt0"
    # Utterance ids may have gaps; order follows them.
    numbers = [int(u.id.split("utt")[1]) for u in dialogue.utterances]
    assert numbers == sorted(numbers)
    texts = [u.text for d in corpus.split("train") for u in d.utterances]
    assert not any("’" in t or "â€" in t for t in texts)
    assert corpus.split("train")[0].utterances[0].text.startswith("also I was the point person on my company's")
    assert any("no clip directory" in p for p in corpus.problems)


def test_meld_mojibake_clips_and_missing_clip(tmp_path: Path, make_clip) -> None:
    (tmp_path / "dev_sent_emo.csv").write_text(
        MELD_HEADER
        + _meld_row(1, "Itâ€™s fine", "Ross", "joy", 3, 1)
        + _meld_row(2, "Oh. My. God.", "Janice", "surprise", 3, 0)
        + _meld_row(3, "Bye", "Ross", "neutral", 4, 0),
        encoding="utf-8",
    )
    clips = tmp_path / "dev_splits_complete"
    clips.mkdir()
    make_clip(clips / "dia3_utt0.mp4", seconds=0.2)
    make_clip(clips / "dia3_utt1.mp4", seconds=0.2)
    corpus = read_meld(tmp_path)
    dialogues = corpus.split("dev")
    assert [d.id for d in dialogues] == ["dia3", "dia4"]
    first, second = dialogues[0].utterances
    assert (first.id, first.speaker, second.text) == ("dia3_utt0", "Janice", "It's fine")
    assert first.audio == first.video == clips / "dia3_utt0.mp4"
    missing = dialogues[1].utterances[0]
    assert missing.audio is None and missing.video is None
    assert any("dia4_utt0" in p for p in corpus.problems)


def test_fix_text() -> None:
    assert fix_text("Itâ€™s â€œokâ€\x9d") == "It's \"ok\""
    assert fix_text("cafÃ© and café") == "café and café"
    assert fix_text("  two   spaces ") == "two spaces"


def test_meld_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "train_sent_emo.csv"
    path.write_text("Sr No.,Utterance,Speaker,Dialogue_ID,Utterance_ID\n1,hi,A,0,0\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing column 'Emotion'") as info:
        read_meld(tmp_path).split("train")
    assert "train_sent_emo.csv" in str(info.value)


def test_meld_unknown_label_names_label_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "train_sent_emo.csv"
    path.write_text(MELD_HEADER + _meld_row(1, "hi", "A", "joy", 0, 0) + _meld_row(2, "hm", "B", "boredom", 0, 1), encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_meld(tmp_path).split("train")
    message = str(info.value)
    assert "'boredom'" in message and f"{path}:3" in message and "neutral, surprise" in message


def test_meld_label_override(tmp_path: Path) -> None:
    (tmp_path / "train_sent_emo.csv").write_text(MELD_HEADER + _meld_row(1, "hi", "A", "joy", 0, 0), encoding="utf-8")
    corpus = read_meld(tmp_path, labels=["joy", "other"])
    assert corpus.labels == ("joy", "other") and corpus.split("train")[0].utterances[0].label == "joy"


def test_non_utf8_bytes_decoded_as_cp1252_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "train_sent_emo.csv"
    data = MELD_HEADER.encode() + b'1,"It\x92s ok",A,joy,positive,0,0,1,1,"a","b"\n'
    path.write_bytes(data)
    corpus = read_meld(tmp_path)
    assert corpus.split("train")[0].utterances[0].text == "It's ok"
    offset = len(MELD_HEADER.encode()) + data[len(MELD_HEADER):].index(b"\x92")
    assert any(f"{path}:2: byte 0x92 at offset {offset}" in p for p in corpus.problems)


# ---------------------------------------------------------------- IEMOCAP
IEMOCAP_CSV = (
    "Utterance_ID,Utterance,Emotion,StartTime,EndTime\n"
    "Ses01F_impro01_M000,Second in time,fru,2.0,3.0\n"
    "Ses01F_impro01_F000,First in time,neu,0.5,1.5\n"
    "Ses01F_impro01_F001,Third,exc,3.5,4.0\n"
    "Ses02M_script01_1_F000,Other dialogue,hap,0.0,1.0\n"
)


def test_iemocap_speakers_order_and_media(tmp_path: Path, make_clip, make_wav) -> None:
    (tmp_path / "train.csv").write_text(IEMOCAP_CSV, encoding="utf-8")
    avi = tmp_path / "Session1" / "dialog" / "avi" / "DivX"
    avi.mkdir(parents=True)
    make_clip(avi / "Ses01F_impro01.avi", seconds=0.5)
    sentences = tmp_path / "Session2" / "sentences" / "wav" / "Ses02M_script01_1"
    sentences.mkdir(parents=True)
    make_wav(sentences / "Ses02M_script01_1_F000.wav", seconds=0.2)
    corpus = read_iemocap(tmp_path)
    assert corpus.labels == IEMOCAP_LABELS
    first, second = corpus.split("train")
    assert first.id == "Ses01F_impro01"
    assert [u.text for u in first.utterances] == ["First in time", "Second in time", "Third"]
    assert [u.speaker for u in first.utterances] == ["Ses01_F", "Ses01_M", "Ses01_F"]
    assert [u.label for u in first.utterances] == ["neutral", "frustration", "excited"]
    assert first.utterances[0].video == avi / "Ses01F_impro01.avi" and first.utterances[0].start == 0.5
    assert second.utterances[0].audio.name == "Ses02M_script01_1_F000.wav" and second.utterances[0].start is None
    assert corpus.problems == []


def test_iemocap_telme_layout_utterance_wav_whole_and_avi_cut(tmp_path: Path, make_clip, make_wav) -> None:
    """TelME: audio = the utterance's own wav (whole); video = the dialogue avi cut by the span."""
    from erckit.data.pipeline import MediaResolver
    from erckit.data.types import AudioSpec, VideoSpec, make_samples

    (tmp_path / "train.csv").write_text(IEMOCAP_CSV, encoding="utf-8")
    avi = tmp_path / "Session1" / "dialog" / "avi" / "DivX"
    avi.mkdir(parents=True)
    make_clip(avi / "Ses01F_impro01.avi", seconds=0.5)
    sentences = tmp_path / "Session1" / "sentences" / "wav" / "Ses01F_impro01"
    sentences.mkdir(parents=True)
    make_wav(sentences / "Ses01F_impro01_F000.wav", seconds=0.2)
    dialogue = read_iemocap(tmp_path).split("train")[0]
    first = dialogue.utterances[0]
    assert first.id == "Ses01F_impro01_F000"
    assert first.audio.name == "Ses01F_impro01_F000.wav" and first.audio_whole
    assert first.video.name == "Ses01F_impro01.avi" and (first.start, first.end) == (0.5, 1.5)
    sample = make_samples([dialogue], IEMOCAP_LABELS)[0]
    audio_job = MediaResolver.job(sample, AudioSpec())
    video_job = MediaResolver.job(sample, VideoSpec())
    assert (audio_job.start, audio_job.end) == (None, None)
    assert (video_job.start, video_job.end) == (0.5, 1.5)
    second = dialogue.utterances[1]  # no wav of its own: dialogue-level audio (the avi's track), cut
    assert second.audio.name == "Ses01F_impro01.avi" and not second.audio_whole


def test_iemocap_speaker_from_gender_letter_not_id() -> None:
    assert iemocap_speaker("Ses03M_impro08a_F002") == "Ses03_F"
    assert iemocap_speaker("Ses05F_script02_2_M031") == "Ses05_M"
    dialogue = Dialogue("d", tuple(Utterance(iemocap_speaker(u), "x") for u in ("Ses01F_a_F000", "Ses01F_a_M000", "Ses01F_a_F001")))
    assert make_samples([dialogue], [])[2].speaker_ids == (1, 2, 1)


def test_iemocap_unknown_label_and_missing_column(tmp_path: Path) -> None:
    (tmp_path / "dev.csv").write_text("Utterance_ID,Utterance,Emotion\nSes01F_a_F000,hi,xxx\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dev.csv:2: unknown label 'xxx'"):
        read_iemocap(tmp_path).split("dev")
    (tmp_path / "dev.csv").write_text("Utterance_ID,Emotion\nSes01F_a_F000,neu\n", encoding="utf-8")
    with pytest.raises(DataError, match="dev.csv: missing column 'Utterance'"):
        read_iemocap(tmp_path).split("dev")


# ---------------------------------------------------------------- EmoryNLP
def test_emorynlp(tmp_path: Path) -> None:
    (tmp_path / "emorynlp_train_final.csv").write_text(
        "Utterance,Speaker,Emotion,Scene_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"
        "Hey,['Joey Tribbiani'],Joyful,1,1,1,1,,\n"
        "Hi,['Monica Geller'],neutral,1,0,1,1,,\n"
        "Bye,['Ross Geller'],Sad,1,0,1,2,,\n",
        encoding="utf-8",
    )
    corpus = read_emorynlp(tmp_path)
    assert corpus.labels == EMORYNLP_LABELS
    first, second = corpus.split("train")
    assert first.id == "s1_e1_c1" and second.id == "s1_e2_c1"
    assert [(u.speaker, u.label) for u in first.utterances] == [("Monica Geller", "Neutral"), ("Joey Tribbiani", "Joyful")]


# ---------------------------------------------------------------- JSONL
def _write(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def test_jsonl_dataset_labels_and_relative_media(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"")
    _write(tmp_path / "train.jsonl", {"id": "d1", "utterances": [
        {"speaker": "A", "text": "hi", "label": "sad", "audio": "a.wav"},
        {"speaker": "B", "text": "yo", "label": "happy", "video": "missing.mp4", "start": 0, "end": 1.5},
    ]})
    _write(tmp_path / "dev.jsonl", {"id": "d2", "utterances": [{"speaker": "A", "text": "x", "label": "happy"}]})
    corpus = read_jsonl_dataset(tmp_path)
    assert corpus.labels == ("happy", "sad")  # sorted set of train labels
    [dialogue] = corpus.split("train")
    assert dialogue.utterances[0].audio == tmp_path / "a.wav"
    assert dialogue.utterances[1].end == 1.5
    assert any("missing.mp4" in p and "does not exist" in p for p in corpus.problems)
    (tmp_path / "labels.json").write_text('["sad", "happy", "calm"]', encoding="utf-8")
    assert read_jsonl_dataset(tmp_path).labels == ("sad", "happy", "calm")


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"id": "x", "utterances": [', r"bad.jsonl:2: invalid JSON: Expecting"),
        ({"id": "x", "utterances": [{"speaker": "A"}]}, r"bad.jsonl:2: utterance 0: missing 'text'"),
        ({"id": "x", "utterances": []}, r"bad.jsonl:2: empty dialogue"),
        ({"id": "x", "utterances": [{"speaker": "A", "text": "t", "label": "angry"}]}, r"bad.jsonl:2: utterance 0: unknown label 'angry'; valid labels: joy"),
        ({"id": "x", "utterances": [{"speaker": "A", "text": "t", "start": 2, "end": 1}]}, r"'end' \(1.0\) is not after"),
        ({"id": "ok", "utterances": [{"speaker": "A", "text": "t"}]}, r"bad.jsonl:2: duplicate dialogue id 'ok'"),
        ('{"id": "x", "utterances": [{"speaker": "A", "text": "t", "start": NaN}]}',
         r"bad.jsonl:2: utterance 0: 'start' must be a finite, non-negative number of seconds, got nan"),
        ('{"id": "x", "utterances": [{"speaker": "A", "text": "t", "start": 0, "end": Infinity}]}',
         r"bad.jsonl:2: utterance 0: 'end' must be a finite"),
        ('{"id": "x", "utterances": [{"speaker": "A", "text": "t", "end": NaN}]}', r"bad.jsonl:2: utterance 0: 'end' must be a finite"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, line: object, expected: str) -> None:
    path = _write(tmp_path / "bad.jsonl", {"id": "ok", "utterances": [{"speaker": "A", "text": "t"}]}, line)
    with pytest.raises(DataError, match=expected):
        read_dialogue_jsonl(path, labels=["joy"])


def test_speaker_numbering_never_leaks_across_dialogues(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "d.jsonl",
        {"id": "a", "utterances": [{"speaker": "X", "text": "1"}, {"speaker": "Y", "text": "2"}]},
        {"id": "b", "utterances": [{"speaker": "Y", "text": "3"}, {"speaker": "Z", "text": "4"}, {"speaker": "X", "text": "5"}]},
    )
    samples = make_samples(read_dialogue_jsonl(path), [])
    assert [s.speaker_ids for s in samples] == [(1,), (1, 2), (1,), (1, 2), (1, 2, 3)]
    assert all(len({u for u in s.context}) == len(s.context) for s in samples)
    assert [len(s.context) for s in samples] == [1, 2, 1, 2, 3]  # context stops at the dialogue start


@pytest.mark.parametrize(
    "read, expected",
    [
        (read_meld, ["MELD root", "does not exist", "MELD.Raw", "https://affective-meld.github.io/",
                     "--set data.root=/path/to/MELD.Raw", "docs/data.md"]),
        (read_iemocap, ["IEMOCAP root", "does not exist", "USC SAIL", "https://sail.usc.edu/iemocap/",
                        "--set data.root=/path/to/IEMOCAP", "docs/data.md"]),
    ],
    ids=["meld", "iemocap"],
)
def test_missing_root_says_where_the_corpus_comes_from(tmp_path: Path, read, expected) -> None:
    with pytest.raises(DataError) as info:
        read(tmp_path / "absent")
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message


def test_root_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "MELD.Raw").write_text("not a directory")
    with pytest.raises(DataError, match=r"MELD root .*MELD.Raw is not a directory\. MELD is not shipped"):
        read_meld(tmp_path / "MELD.Raw")


def test_duplicate_labels_in_labels_json_name_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "train.jsonl", {"id": "d1", "utterances": [{"speaker": "A", "text": "hi", "label": "joy"}]})
    (tmp_path / "labels.json").write_text('["joy", "sad", "joy"]', encoding="utf-8")
    with pytest.raises(DataError, match=r"labels.json: duplicate label\(s\) 'joy'$"):
        read_jsonl_dataset(tmp_path)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity"])
def test_csv_times_must_be_finite(tmp_path: Path, value: str) -> None:
    from erckit.data.readers._csv import parse_float

    with pytest.raises(DataError, match=rf"s.csv:7: column 'StartTime': '{value}' is not a finite number"):
        parse_float(value, "StartTime", tmp_path / "s.csv", 7)
    assert parse_float(" 1.5 ", "StartTime", tmp_path / "s.csv", 7) == 1.5
