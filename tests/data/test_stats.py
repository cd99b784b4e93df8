from __future__ import annotations

from pathlib import Path

from rich.console import Console

from erckit.data.stats import compute_stats, render_stats
from erckit.data.types import Dialogue, Utterance


def test_stats_counts_and_render(tmp_path: Path, make_clip) -> None:
    clip = make_clip(tmp_path / "c.mp4", seconds=1.0)
    dialogues = [
        Dialogue("a", (Utterance("A", "x", "joy", audio=clip, video=clip), Utterance("B", "y", "sad", audio=tmp_path / "gone.wav"))),
        Dialogue("b", (Utterance("A", "z", "joy", video=clip, start=0.2, end=0.7),)),
    ]
    stats = compute_stats("train", dialogues)
    assert (stats.dialogues, stats.utterances) == (2, 3)
    assert stats.labels == {"joy": 2, "sad": 1}
    assert stats.speakers_per_dialogue == [2, 1]
    assert (stats.with_audio, stats.with_video) == (2, 2)
    assert stats.missing_files == [str(tmp_path / "gone.wav")]
    assert len(stats.durations) == 2
    assert abs(stats.durations[0] - 1.0) < 0.05 and abs(stats.durations[1] - 0.5) < 1e-9
    console = Console(record=True, width=160)
    console.print(render_stats([stats], ["joy", "sad", "neutral"]))
    text = console.export_text()
    assert "label joy" in text and "2 (66.7%)" in text and "gone.wav" in text
