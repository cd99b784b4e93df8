from __future__ import annotations

import json
from pathlib import Path

from erckit.data.demo import DEMO_LABELS, ensure_demo, write_demo
from erckit.data.media import load_audio, load_frames
from erckit.data.readers import read_jsonl_dataset
from erckit.data.types import AudioSpec, VideoSpec

SMALL = {"dialogues": {"train": 6, "dev": 2, "test": 2}}


def test_demo_structure(demo_dir: Path) -> None:
    assert json.loads((demo_dir / "labels.json").read_text()) == list(DEMO_LABELS)
    assert (demo_dir / "README.txt").is_file()
    corpus = read_jsonl_dataset(demo_dir)
    assert corpus.labels == DEMO_LABELS and corpus.problems == []
    assert [len(corpus.split(s)) for s in ("train", "dev", "test")] == [6, 2, 2]
    utterances = [u for d in corpus.split("train") for u in d.utterances]
    assert all(4 <= len(d) <= 8 for d in corpus.split("train"))
    assert all(2 <= len({u.speaker for u in d.utterances}) <= 3 for d in corpus.split("train"))
    first = next(u for u in utterances if u.audio is not None and u.video is not None)
    wave = load_audio(first.audio, AudioSpec())
    assert 0.7 * 16_000 <= wave.numel() <= 1.5 * 16_000
    assert load_frames(first.video, VideoSpec(num_frames=4, size=64)).shape == (4, 64, 64, 3)


def test_demo_deterministic_by_seed(tmp_path: Path) -> None:
    write_demo(tmp_path / "a", seed=3, **SMALL)
    write_demo(tmp_path / "b", seed=3, **SMALL)
    write_demo(tmp_path / "c", seed=4, **SMALL)
    for split in ("train", "dev", "test"):
        a = (tmp_path / "a" / f"{split}.jsonl").read_bytes()
        assert a == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
    assert (tmp_path / "a" / "train.jsonl").read_bytes() != (tmp_path / "c" / "train.jsonl").read_bytes()
    assert (tmp_path / "a" / "media" / "train000_0.wav").read_bytes() == (tmp_path / "b" / "media" / "train000_0.wav").read_bytes()


def test_demo_signals_and_missing_modalities(tmp_path: Path) -> None:
    summary = write_demo(tmp_path, seed=0)  # the full-size default
    total = sum(summary.utterances.values())
    assert 0.25 < summary.ambiguous / total < 0.45
    assert summary.without_audio > 0 and summary.without_video > 0
    assert set(summary.labels) == set(DEMO_LABELS) and min(summary.labels.values()) > 0


def test_ensure_demo_generates_once_and_protects_other_dirs(tmp_path: Path) -> None:
    import pytest

    from erckit.errors import DataError

    root = ensure_demo(tmp_path / "demo", seed=1, **SMALL)
    stamp = (root / "train.jsonl").stat().st_mtime_ns
    assert ensure_demo(tmp_path / "demo", seed=1, **SMALL) == root
    assert (root / "train.jsonl").stat().st_mtime_ns == stamp
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not an erckit demo"):
        ensure_demo(tmp_path / "mine")
    with pytest.raises(DataError, match="other settings"):
        ensure_demo(tmp_path / "demo", seed=2, **SMALL)


def test_episode_cues_cut_the_clips_exactly(tmp_path: Path) -> None:
    """Each cue of the episode decodes to the very samples and frames of its own clips' span.

    The episode copies the clips' video packets (no re-encoding) and their 16-bit
    samples (PCM), so equality is exact, at native resolution and resized.
    """
    import torch

    from erckit.data.demo import write_episode
    from erckit.data.media import load_many
    from erckit.data.subtitles import read_cues

    write_demo(tmp_path, dialogues={"train": 1, "dev": 1, "test": 3})
    episode = write_episode(tmp_path)
    turns = [t for line in episode.dialogues.read_text().splitlines() for t in json.loads(line)["utterances"]]
    srt, vtt = (read_cues(episode.subtitles[kind]) for kind in ("srt", "vtt"))
    assert episode.cues == len(turns) == len(srt) > 10
    assert [(c.start, c.end, c.speaker, c.text) for c in srt] == [(c.start, c.end, c.speaker, c.text) for c in vtt]
    assert [(c.speaker, c.text) for c in srt] == [(t["speaker"], t["text"]) for t in turns]
    assert all(t["start"] == 0.0 and t["end"] == round(c.end - c.start, 3) for t, c in zip(turns, srt))
    specs = [AudioSpec(16_000), VideoSpec(num_frames=4, size=None), VideoSpec(num_frames=3, size=32)]
    cut = load_many(episode.video, [(spec, c.start, c.end) for c in srt for spec in specs])
    for index, turn in enumerate(turns):
        own = load_many(tmp_path / turn["audio"], [(specs[0], turn["start"], turn["end"])])
        own += load_many(tmp_path / turn["video"], [(spec, turn["start"], turn["end"]) for spec in specs[1:]])
        for mine, theirs in zip(cut[3 * index : 3 * index + 3], own):
            assert torch.equal(mine, theirs), (index, turn["id"])
    # Dialogues are a gap of silence apart, longer than any pause inside one.
    sizes = [len(json.loads(line)["utterances"]) for line in episode.dialogues.read_text().splitlines()]
    firsts = {sum(sizes[:i]) for i in range(1, len(sizes))}
    pauses = [(b.start - a.end, i in firsts) for i, (a, b) in enumerate(zip(srt, srt[1:]), start=1)]
    assert len(sizes) == 3 and all((pause >= 2.0) == new for pause, new in pauses)
