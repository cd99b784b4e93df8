"""The MELD and IEMOCAP readers' profile "authors" and the TelME authors' IEMOCAP CSV layout."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from erckit.data.readers import (
    IEMOCAP_AUTHORS_LABELS,
    IEMOCAP_LABELS,
    MELD_AUTHORS_LABELS,
    MELD_LABELS,
    carried_speaker_numbers,
    read_iemocap,
    read_meld,
)
from erckit.data.types import Dialogue, Utterance, make_samples
from erckit.errors import DataError

# The official MELD CSVs: $MELD_DIR, else the shared data folder beside the repository (absent in CI).
MELD_REAL = Path(os.environ.get("MELD_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data" / "meld")
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"


def meld_csv(path: Path, rows: list[tuple[str, str, int, int]], video: bool = False) -> Path:
    """rows: (text, speaker, dialogue, utterance); every label joy."""
    lines = [MELD_HEADER + (",Video_Path" if video else "")]
    for n, (text, speaker, dia, utt) in enumerate(rows, start=1):
        clip = f",./dataset/MELD.Raw/clips/dia{dia}_utt{utt}.mp4" if video else ""
        lines.append(f'{n},"{text}",{speaker},joy,positive,{dia},{utt},1,1,"00:00:01,000","00:00:02,000"{clip}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# Hand-computed with the authors' rule (number the row, then reset the list at a new dialogue):
# dia4: Ross 1, Rachel 2, Ross 1. dia1: Monica is not in dia4's list [Ross, Rachel] -> 3, the list
# restarts empty; Ross 1, Monica 2. dia9: Joey, not in [Ross, Monica] -> 3, restart. dia2: Joey
# numbered in dia9's empty list -> 1, restart; Chandler 1 (two speakers share a number).
MELD_ROWS = [
    ("Itâ€™s  me ", "Ross", 4, 0), ("Hi", "Rachel", 4, 1), ("Bye", "Ross", 4, 2),
    ("a", "Monica", 1, 0), ("c", "Ross", 1, 2), ("b", "Monica", 1, 1),
    ("Hey", "Joey", 9, 0),
    ("x", "Joey", 2, 0), ("y", "Chandler", 2, 1),
]
AUTHORS_NUMBERS = {"dia4": (1, 2, 1), "dia1": (3, 1, 2), "dia9": (3,), "dia2": (1, 1)}


def test_carried_numbering_by_hand() -> None:
    rows = [(dia, speaker) for _, speaker, dia, _ in MELD_ROWS]
    assert tuple(carried_speaker_numbers(rows)) == sum(AUTHORS_NUMBERS.values(), ())
    assert carried_speaker_numbers([]) == []
    # docs/data.md's example and the function's docstring
    assert carried_speaker_numbers([("A", "x"), ("A", "y"), ("B", "y"), ("B", "z"), ("B", "y")]) == [1, 2, 2, 1, 2]


def test_meld_authors_profile_order_text_and_numbers(tmp_path: Path) -> None:
    meld_csv(tmp_path / "train_sent_emo.csv", MELD_ROWS)
    authors = read_meld(tmp_path, profile="authors").split("train")
    assert [d.id for d in authors] == ["dia4", "dia1", "dia9", "dia2"]  # file order
    assert [u.id for u in authors[1].utterances] == ["dia1_utt0", "dia1_utt2", "dia1_utt1"]
    assert {d.id: d.speaker_numbers for d in authors} == AUTHORS_NUMBERS
    assert authors[0].utterances[0].text == "Itâ€™s  me "  # as in the file: the authors tokenized it raw
    samples = make_samples(authors, MELD_LABELS)
    assert [tuple(s.speaker_ids) for s in samples[3:6]] == [(3,), (3, 1), (3, 1, 2)]

    erckit = read_meld(tmp_path).split("train")
    assert [d.id for d in erckit] == ["dia1", "dia2", "dia4", "dia9"]
    assert all(d.speaker_numbers is None for d in erckit)
    assert erckit[0].utterances[0].text == "a" and erckit[2].utterances[0].text == "It's me"
    assert [tuple(s.speaker_ids) for s in make_samples(erckit[:1], MELD_LABELS)][-1] == (1, 1, 2)


def test_meld_authors_profile_prefers_their_csv_and_uses_video_path(tmp_path: Path) -> None:
    meld_csv(tmp_path / "dev_sent_emo.csv", [("official", "A", 0, 0)])
    meld_csv(tmp_path / "dev_meld_emo.csv", [("theirs", "A", 0, 0), ("too", "B", 0, 1)], video=True)
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "dia0_utt0.mp4").write_bytes(b"")  # found through Video_Path only
    corpus = read_meld(tmp_path, profile="authors")
    first, second = corpus.split("dev")[0].utterances
    assert first.text == "theirs" and first.audio == first.video == tmp_path / "clips" / "dia0_utt0.mp4"
    assert second.video is None and any("dia0_utt1" in p and "missing" in p for p in corpus.problems)
    assert read_meld(tmp_path).split("dev")[0].utterances[0].text == "official"


def test_authors_profile_needs_each_dialogue_in_one_block(tmp_path: Path) -> None:
    meld_csv(tmp_path / "train_sent_emo.csv", [("a", "A", 0, 0), ("b", "B", 1, 0), ("c", "A", 0, 1)])
    with pytest.raises(DataError, match=r"train_sent_emo.csv:4: dialogue 0 continues after other dialogues \(its rows start on line 2\)"):
        read_meld(tmp_path, profile="authors").split("train")
    assert [len(d) for d in read_meld(tmp_path).split("train")] == [2, 1]


@pytest.mark.parametrize("read", [read_meld, read_iemocap])
def test_unknown_profile_lists_the_choices(tmp_path: Path, read) -> None:
    with pytest.raises(DataError, match="profile 'theirs' is not one of: erckit, authors"):
        read(tmp_path, profile="theirs")


def test_authors_label_orders_are_alphabetical_full_names() -> None:
    assert MELD_AUTHORS_LABELS == tuple(sorted(MELD_LABELS))
    assert IEMOCAP_AUTHORS_LABELS == tuple(sorted(IEMOCAP_LABELS))
    assert len(MELD_AUTHORS_LABELS) == 7 and len(IEMOCAP_AUTHORS_LABELS) == 6


@pytest.mark.skipif(not (MELD_REAL / "train_sent_emo.csv").is_file(), reason="MELD CSVs not available")
def test_meld_real_train_carried_numbers() -> None:
    """Against an independent transcription of the authors' preprocessing loop over the same file."""
    with (MELD_REAL / "train_sent_emo.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    speaker, dialogue = rows[0].index("Speaker"), rows[0].index("Dialogue_ID")
    expected, speaker_set, previous = [], [], "start"
    for line in rows[1:]:
        if line[speaker] not in speaker_set:
            speaker_set.append(line[speaker])
        expected.append(speaker_set.index(line[speaker]) + 1)
        if previous != "start" and line[dialogue] != previous:
            speaker_set = []
        previous = line[dialogue]
    dialogues = read_meld(MELD_REAL, profile="authors").split("train")
    assert [n for d in dialogues for n in d.speaker_numbers] == expected
    assert len(dialogues) == 1038
    # The count: dialogues whose first utterance does not get 1, as numbering it in its own dialogue would.
    assert sum(d.speaker_numbers[0] != 1 for d in dialogues) == 836


# ---------------------------------------------------------------- IEMOCAP, the authors' layout
AUTHORS_HEADER = "Utterance,Speaker,Dialogue_ID,Start_Time,End_Time,Wav_Path,Video_Path,Emotion"
RELEASE = "./dataset/IEMOCAP_full_release"
# (text, utterance id, start, end, emotion); file order, not time order (F001 starts before M000 ends).
IEMOCAP_ROWS = [
    ("Next.", "Ses01M_impro01_F000", 0.5, 1.2, "ang"),
    ("Yes,  me.", "Ses01M_impro01_M000", 8.2208, 11.28, "fru"),
    ("Window’s open.", "Ses01M_impro01_F001", 6.77, 8.46, "neu"),
    ("Other.", "Ses05F_script01_1_F000", 2.0, 3.0, "hap"),
    ("Reply.", "Ses05F_script01_1_M000", 3.5, 4.0, "exc"),
]


def authors_tree(tmp_path: Path, make_clip, make_wav, listed_session5: str = "DivX") -> Path:
    """The authors' dataset/ folder: their CSV, per-utterance wavs, dialogue avis (Session5 as on disk: Divx)."""
    release = tmp_path / "dataset" / "IEMOCAP_full_release"
    lines = [AUTHORS_HEADER]
    for text, uid, start, end, emotion in IEMOCAP_ROWS:
        dialogue = uid.rsplit("_", 1)[0]
        session = f"Session{int(uid[3:5])}"
        wav = f"{RELEASE}/{session}/sentences/wav/{dialogue}/{uid}.wav"
        avi = f"{RELEASE}/{session}/dialog/avi/{listed_session5 if session == 'Session5' else 'DivX'}/{dialogue}.avi"
        lines.append(f'"{text}",{uid},{dialogue},{start},{end},{wav},{avi},{emotion}')
        wav_dir = release / session / "sentences" / "wav" / dialogue
        wav_dir.mkdir(parents=True, exist_ok=True)
        if uid != "Ses05F_script01_1_M000":  # one wav missing
            make_wav(wav_dir / f"{uid}.wav", seconds=0.1)
        avi_dir = release / session / "dialog" / "avi" / ("Divx" if session == "Session5" else "DivX")
        avi_dir.mkdir(parents=True, exist_ok=True)
        if not (avi_dir / f"{dialogue}.avi").exists():
            make_clip(avi_dir / f"{dialogue}.avi", seconds=0.3, audio_rate=None)
    (release / "IEMOCAP_train.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("where", ["repository", "dataset", "release"])
def test_iemocap_authors_layout_paths_order_and_margin(tmp_path: Path, make_clip, make_wav, where: str) -> None:
    base = authors_tree(tmp_path, make_clip, make_wav)
    root = {"repository": base, "dataset": base / "dataset", "release": base / "dataset" / "IEMOCAP_full_release"}[where]
    corpus = read_iemocap(root)
    first, second = corpus.split("train")
    assert (first.id, second.id) == ("Ses01M_impro01", "Ses05F_script01_1")
    assert [u.id for u in first.utterances] == ["Ses01M_impro01_F000", "Ses01M_impro01_M000", "Ses01M_impro01_F001"]
    release = base / "dataset" / "IEMOCAP_full_release"
    u = first.utterances[1]
    assert u.audio == release / "Session1/sentences/wav/Ses01M_impro01/Ses01M_impro01_M000.wav" and u.audio_whole
    assert u.video == release / "Session1/dialog/avi/DivX/Ses01M_impro01.avi"
    assert (u.start, u.end) == pytest.approx((7.2208, 12.28))
    assert (first.utterances[0].start, first.utterances[0].end) == pytest.approx((0.0, 2.2))  # floored at 0
    # Session5's listed ".../DivX/..." is "Divx" on disk: found by file name under root.
    assert second.utterances[0].video == release / "Session5/dialog/avi/Divx/Ses05F_script01_1.avi"
    assert second.utterances[1].audio is None and not second.utterances[1].audio_whole
    assert corpus.problems == ["IEMOCAP_train.csv: no wav for 1 utterance(s) (Ses05F_script01_1_M000)"]
    # Speakers as in erckit's layout (session + gender), numbered by first appearance; text repaired.
    assert [u.speaker for u in first.utterances] == ["Ses01_F", "Ses01_M", "Ses01_F"]
    assert first.speaker_numbers is None and first.utterances[2].text == "Window's open."
    assert [u.label for u in first.utterances] == ["anger", "frustration", "neutral"]


def test_iemocap_authors_margin_is_the_video_span_only(tmp_path: Path, make_clip, make_wav) -> None:
    from erckit.data.pipeline import MediaResolver
    from erckit.data.types import AudioSpec, VideoSpec

    dialogue = read_iemocap(authors_tree(tmp_path, make_clip, make_wav)).split("train")[0]
    sample = make_samples([dialogue], IEMOCAP_LABELS)[2]
    assert (MediaResolver.job(sample, AudioSpec()).start, MediaResolver.job(sample, AudioSpec()).end) == (None, None)
    video = MediaResolver.job(sample, VideoSpec())
    assert (video.start, video.end) == pytest.approx((5.77, 9.46))


def test_iemocap_authors_profile_speakers_numbers_and_text(tmp_path: Path, make_clip, make_wav) -> None:
    first, second = read_iemocap(authors_tree(tmp_path, make_clip, make_wav), profile="authors").split("train")
    assert [u.speaker for u in first.utterances] == [r[1] for r in IEMOCAP_ROWS[:3]]
    # Every id is a new speaker: 1, 2, 3; the next dialogue's first row is numbered in that list (4),
    # then the list restarts: 1.
    assert (first.speaker_numbers, second.speaker_numbers) == ((1, 2, 3), (4, 1))
    assert first.utterances[1].text == "Yes,  me." and first.utterances[2].text == "Window’s open."
    assert (first.utterances[1].start, first.utterances[1].end) == pytest.approx((7.2208, 12.28))
    assert [tuple(s.speaker_ids) for s in make_samples([second], IEMOCAP_LABELS)] == [(4,), (4, 1)]


def test_iemocap_authors_profile_refuses_erckit_layout(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("Utterance_ID,Utterance,Emotion\nSes01F_a_F000,hi,neu\n", encoding="utf-8")
    assert read_iemocap(tmp_path).split("train")[0].utterances[0].speaker == "Ses01_F"
    with pytest.raises(DataError, match=r"train.csv: profile 'authors' reads the TelME authors' CSV layout .*profile 'erckit'"):
        read_iemocap(tmp_path, profile="authors").split("train")


@pytest.mark.parametrize(
    "header, erckit_missing, authors_missing",
    [
        ("Utterance,Speaker,Emotion", "column 'Utterance_ID'", "columns 'Dialogue_ID', 'Start_Time', 'End_Time', 'Wav_Path', 'Video_Path'"),
        ("Utterance_ID,Utterance,Wav_Path", "column 'Emotion'", "columns 'Speaker', 'Dialogue_ID', 'Start_Time', 'End_Time', 'Video_Path', 'Emotion'"),
    ],
)
def test_iemocap_other_header_names_both_layouts(tmp_path: Path, header: str, erckit_missing: str, authors_missing: str) -> None:
    (tmp_path / "IEMOCAP_dev.csv").write_text(header + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_iemocap(tmp_path).split("dev")
    message = str(info.value)
    assert f"IEMOCAP_dev.csv: missing {erckit_missing} for erckit's IEMOCAP layout (Utterance_ID, Utterance, Emotion;" in message
    assert f"or {authors_missing} for the TelME authors' layout (Utterance, Speaker, Dialogue_ID, Start_Time," in message
    assert f"found: {header.replace(',', ', ')}" in message and "\n" not in message


def test_iemocap_authors_layout_bad_times(tmp_path: Path) -> None:
    row = "hi,Ses01F_a_F000,Ses01F_a,{start},{end},a.wav,a.avi,neu"
    for start, end, expected in [("2", "1", "End_Time 1.0 is not after Start_Time 2.0"), ("", "1", "empty Start_Time"),
                                 ("x", "1", "column 'Start_Time': 'x' is not a number")]:
        (tmp_path / "test.csv").write_text(f"{AUTHORS_HEADER}\n{row.format(start=start, end=end)}\n", encoding="utf-8")
        with pytest.raises(DataError, match=rf"test.csv:2: {expected}"):
            read_iemocap(tmp_path).split("test")


# ---------------------------------------------------------------- Dialogue.speaker_numbers
def test_speaker_numbers_replace_first_appearance_and_survive_context_cuts() -> None:
    dialogue = Dialogue("d", tuple(Utterance(s, "x") for s in "ABAB"), speaker_numbers=(3, 1, 12, 1))
    samples = make_samples([dialogue], [], max_context=2)
    assert [tuple(s.speaker_ids) for s in samples] == [(3,), (3, 1), (1, 12), (12, 1)]
    assert make_samples([Dialogue("d", dialogue.utterances)], [])[-1].speaker_ids == (1, 2, 1, 2)


@pytest.mark.parametrize(
    "numbers, expected",
    [((1, 2), r"dialogue 'd': 2 speaker numbers for 3 utterances"),
     ((1, 0, 2), r"dialogue 'd' utterance 1: speaker number 0 is not an integer >= 1"),
     ((1, True, 2), r"utterance 1: speaker number True is not"), ((1, 2.0, 2), r"utterance 1: speaker number 2.0 is not")],
)
def test_speaker_numbers_are_checked(numbers: tuple, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        Dialogue("d", tuple(Utterance(s, "x") for s in "ABC"), speaker_numbers=numbers)


def test_recipe_check_refuses_an_unknown_profile(tmp_path: Path) -> None:
    from erckit.errors import RecipeError
    from erckit.recipe import load_recipe

    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[data]\ndataset = "erckit.IEMOCAP.v1"\nroot = "x"\nprofile = "theirs"\n\n'
        '[model.encoders.text]\nfactory = "example.BagOfWords.v1"\n\n[[stages]]\nkind = "supervised"\nencoders = ["text"]\n'
    )
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    [problem] = info.value.problems
    assert problem.startswith("data -> profile:") and "'erckit'" in problem and "'authors'" in problem
    assert load_recipe(recipe, ['data.profile="authors"']).data.args["profile"] == "authors"


def test_listed_paths_never_leave_the_bases(tmp_path: Path) -> None:
    from erckit.data.readers._authors import ListedPaths

    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "root" / "a" / "x.wav").write_bytes(b"")
    (tmp_path / "outside.wav").write_bytes(b"")
    listed = ListedPaths([tmp_path / "root"])
    assert listed.find("./dataset/corpus/a/x.wav") == tmp_path / "root" / "a" / "x.wav"
    assert listed.find("../outside.wav") is None and listed.find("") is None
    assert listed.find(str(tmp_path / "outside.wav")) == tmp_path / "outside.wav"  # absolute and present: as is
