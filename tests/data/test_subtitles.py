"""erckit.data.subtitles: SRT/VTT/transcripts -> cues -> dialogues, broken files, encodings, writing back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from erckit.data.subtitles import (
    UNKNOWN_SPEAKER, Cue, dialogues_from_cues, fit_to_duration, format_srt, format_vtt, read_cues, tidy_cues,
)
from erckit.errors import DataError, ErckitError

SRT = """1
00:00:01,000 --> 00:00:02,500
Ross: We were on a break!

2
00:00:03,000 --> 00:00:04,250
Well, here is the thing: no.

3
00:01:05,100 --> 00:01:06,000
Dr. Ross Geller: Hi.
"""

VTT = """WEBVTT

00:00:01.000 --> 00:00:02.500
<v Ross>We were on a break!

00:00:03.000 --> 00:00:04.250
Rachel: No we were not.

00:01:05.100 --> 00:01:06.000
just text
"""


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_srt_speakers_from_name_lines(tmp_path: Path) -> None:
    cues = read_cues(write(tmp_path / "x.srt", SRT))
    assert [(c.start, c.end, c.speaker, c.text) for c in cues] == [
        (1.0, 2.5, "Ross", "We were on a break!"),
        (3.0, 4.25, UNKNOWN_SPEAKER, "Well, here is the thing: no."),  # a sentence, not a name
        (65.1, 66.0, "Dr. Ross Geller", "Hi."),
    ]
    assert cues[0].where == f"{tmp_path / 'x.srt'}:2" and cues[2].where.endswith(":10")


def test_vtt_voice_tags_name_lines_and_milliseconds(tmp_path: Path) -> None:
    cues = read_cues(write(tmp_path / "x.vtt", VTT))
    assert [(c.start, c.end, c.speaker, c.text) for c in cues] == [
        (1.0, 2.5, "Ross", "We were on a break!"), (3.0, 4.25, "Rachel", "No we were not."),
        (65.1, 66.0, UNKNOWN_SPEAKER, "just text"),
    ]


def test_speaker_pattern(tmp_path: Path) -> None:
    path = write(tmp_path / "x.srt", "1\n00:00:01,000 --> 00:00:02,000\n[Joey] How you doin?\n")
    (cue,) = read_cues(path, speaker_pattern=r"^\[(?P<speaker>[^\]]+)\]\s*(?P<text>.*)$")
    assert (cue.speaker, cue.text) == ("Joey", "How you doin?")
    with pytest.raises(DataError, match="named groups"):
        read_cues(path, speaker_pattern=r"(\w+): (.*)")
    with pytest.raises(DataError, match="not a regular expression"):
        read_cues(path, speaker_pattern=r"(?P<speaker>")


@pytest.mark.parametrize("suffix, line", [
    (".srt", "00:00:03,000 --> 00:00:0x,250"), (".srt", "00:00:03.000 -> 00:00:04,250 -->"),
    (".vtt", "00:00:03.000 --> 00:00:04,250"),
])
def test_a_malformed_timing_names_its_line(tmp_path: Path, suffix: str, line: str) -> None:
    good = SRT if suffix == ".srt" else VTT
    broken = good.replace("00:00:03,000 --> 00:00:04,250" if suffix == ".srt" else "00:00:03.000 --> 00:00:04.250", line)
    path = write(tmp_path / f"x{suffix}", broken)
    with pytest.raises(DataError, match=rf"x\{suffix}:6: malformed cue timing"):
        read_cues(path)


def test_utf16_with_a_bom_reads_like_utf8(tmp_path: Path) -> None:
    expected = read_cues(write(tmp_path / "a.srt", SRT))
    for encoding in ("utf-16", "utf-16-be", "utf-8-sig"):
        text = SRT if encoding != "utf-16-be" else "\ufeff" + SRT
        cues = read_cues(write(tmp_path / "b.srt", text, encoding))
        assert [(c.start, c.end, c.speaker, c.text) for c in cues] == [(c.start, c.end, c.speaker, c.text) for c in expected]


def test_latin1_needs_its_encoding_named(tmp_path: Path) -> None:
    path = write(tmp_path / "x.srt", "1\n00:00:01,000 --> 00:00:02,000\nZoé: Café?\n", "latin-1")
    with pytest.raises(DataError, match=r"x\.srt:3: not UTF-8 text \(byte 0xe9\); give its encoding, e.g. --encoding latin-1"):
        read_cues(path)
    (cue,) = read_cues(path, encoding="latin-1")
    assert (cue.speaker, cue.text) == ("Zoé", "Café?")
    with pytest.raises(DataError, match="unknown text encoding"):
        read_cues(path, encoding="klingon")


def test_transcripts_jsonl_and_csv(tmp_path: Path) -> None:
    rows = [{"start": 0.5, "end": 1.5, "speaker": "A", "text": " hi "}, {"start": 2, "end": 3, "text": "yo"}]
    jsonl = write(tmp_path / "t.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    csv = write(tmp_path / "t.csv", "start,end,speaker,text\n0.5,1.5,A,hi\n2,3,,yo\n")
    for path in (jsonl, csv):
        assert [(c.start, c.end, c.speaker, c.text) for c in read_cues(path)] == [(0.5, 1.5, "A", "hi"), (2.0, 3.0, UNKNOWN_SPEAKER, "yo")]
    with pytest.raises(DataError, match=r"t\.csv:3: 'end' must be a non-negative number of seconds, got 'soon'"):
        read_cues(write(tmp_path / "t.csv", "start,end,text\n0,1,a\n1,soon,b\n"))
    with pytest.raises(DataError, match="lacks column"):
        read_cues(write(tmp_path / "t.csv", "begin,end,text\n0,1,a\n"))
    with pytest.raises(DataError, match=r"t\.jsonl:1: invalid JSON"):
        read_cues(write(tmp_path / "t.jsonl", "{start\n"))
    with pytest.raises(DataError, match="unknown timed-text format '.txt'"):
        read_cues(write(tmp_path / "t.txt", "x"))
    with pytest.raises(DataError, match="file not found"):
        read_cues(tmp_path / "none.srt")


def test_missing_library_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "srt", None)  # import srt -> ImportError
    with pytest.raises(ErckitError, match=r"needs the 'srt' package: pip install 'erckit\[subtitles\]'"):
        read_cues(write(tmp_path / "x.srt", SRT))


def cue(start: float, end: float, text: str = "t", line: int = 1) -> Cue:
    return Cue(start, end, text, "A", f"f.srt:{line}")


def test_tidy_cues_names_every_cue_it_changes() -> None:
    cues = [cue(0, 1, line=1), cue(5, 6, line=2), cue(2, 3, line=3), cue(2.5, 4, line=4), cue(7, 8, "", line=5), cue(9, 9, line=6)]
    kept, messages = tidy_cues(cues)
    assert [c.where for c in kept] == ["f.srt:1", "f.srt:3", "f.srt:4", "f.srt:2"]
    assert messages == [
        "f.srt:5: cue [7.000 --> 8.000] has no text: skipped",
        "f.srt:6: cue [9.000 --> 9.000] ends before it starts: skipped",
        "f.srt:3: cue [2.000 --> 3.000] starts before the cue above it: cues sorted by start time",
        "f.srt:4: cue [2.500 --> 4.000] overlaps the previous cue by 0.500 s: both kept",
    ]


def test_fit_to_duration() -> None:
    inside, outside, messages = fit_to_duration([cue(0, 1), cue(1.5, 3), cue(4, 5)], 2.0)
    assert [(c.start, c.end) for c in inside] == [(0, 1), (1.5, 2.0)] and [(c.start, c.end) for c in outside] == [(4, 5)]
    assert messages == ["f.srt:1: cue [1.500 --> 3.000] runs past the media's end (2.000 s): cut there"]


def test_dialogues_split_at_gaps(tmp_path: Path) -> None:
    media = tmp_path / "e.mp4"
    cues = [cue(0, 1), cue(1.2, 2), cue(5, 6), cue(6.5, 7)]
    (one,) = dialogues_from_cues(cues, media, name="e")
    assert one.id == "e" and [u.id for u in one.utterances] == ["cue1", "cue2", "cue3", "cue4"]
    assert one.utterances[2].audio == media and one.utterances[2].video == media and one.utterances[2].span("audio") == (5, 6)
    split = dialogues_from_cues(cues, media, gap=1.0, name="e", video=False)
    assert [d.id for d in split] == ["e-001", "e-002"] and [len(d) for d in split] == [2, 2]
    assert split[1].utterances[0].video is None and split[1].utterances[0].id == "cue3"


def test_written_subtitles_parse_back(tmp_path: Path) -> None:
    cues = [Cue(1.0, 2.5, "We were on a break!", "Ross"), Cue(61.001, 3723.004, "no speaker")]
    notes = ["[anger 0.91]", "[neutral 0.40]"]
    srt_cues = read_cues(write(tmp_path / "o.srt", format_srt(cues, notes)))
    vtt_cues = read_cues(write(tmp_path / "o.vtt", format_vtt(cues, notes)))
    for back in (srt_cues, vtt_cues):
        assert [(c.start, c.end, c.speaker) for c in back] == [(1.0, 2.5, "Ross"), (61.001, 3723.004, UNKNOWN_SPEAKER)]
        assert [c.text for c in back] == ["We were on a break!\n[anger 0.91]", "no speaker\n[neutral 0.40]"]


@pytest.mark.parametrize("name, text, message", [
    ("x.srt", "hello world\nthis is not srt\n", "not a well-formed SRT file"),
    ("x.vtt", "00:00:01.000 --> 00:00:02.000\nno WEBVTT header\n", "not a well-formed WebVTT file"),
])
def test_a_file_that_is_not_subtitles(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_cues(write(tmp_path / name, text))
    assert read_cues(write(tmp_path / "empty.srt", "")) == []
