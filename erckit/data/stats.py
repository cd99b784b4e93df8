"""Statistics of a split for ``erckit data stats``: sizes, labels, speakers, media coverage.

Durations come from container headers (``probe_duration``: no decoding); for
utterances with a span, the span length is used instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .types import Dialogue

if TYPE_CHECKING:
    from rich.console import RenderableType


@dataclass
class SplitStats:
    name: str
    dialogues: int = 0
    utterances: int = 0
    labels: Counter = field(default_factory=Counter)
    unlabelled: int = 0
    speakers_per_dialogue: list[int] = field(default_factory=list)
    turns_per_dialogue: list[int] = field(default_factory=list)
    with_audio: int = 0
    with_video: int = 0
    missing_files: list[str] = field(default_factory=list)  # referenced but not on disk
    unreadable_files: list[str] = field(default_factory=list)  # on disk, header unreadable
    durations: list[float] = field(default_factory=list)  # seconds per utterance with media


def compute_stats(name: str, dialogues: Sequence[Dialogue], probe: bool = True) -> SplitStats:
    """Count everything; with ``probe``, read each media file's header once for durations."""
    from ..errors import MediaError

    stats = SplitStats(name)
    header_cache: dict[Path, float | None] = {}
    missing: set[str] = set()
    unreadable: set[str] = set()
    for dialogue in dialogues:
        stats.dialogues += 1
        stats.turns_per_dialogue.append(len(dialogue))
        stats.speakers_per_dialogue.append(len({u.speaker for u in dialogue.utterances}))
        for utterance in dialogue.utterances:
            stats.utterances += 1
            if utterance.label is None:
                stats.unlabelled += 1
            else:
                stats.labels[utterance.label] += 1
            stats.with_audio += utterance.audio is not None
            stats.with_video += utterance.video is not None
            files = {p for p in (utterance.audio, utterance.video) if p is not None}
            for path in files:
                if not Path(path).is_file():
                    missing.add(str(path))
            if utterance.start is not None and utterance.end is not None and not utterance.audio_whole:
                stats.durations.append(utterance.end - utterance.start)
                continue
            if not probe:
                continue
            for path in sorted(files, key=str):
                if str(path) in missing:
                    continue
                if path not in header_cache:
                    from .media import probe_duration

                    try:
                        header_cache[path] = probe_duration(path)
                    except MediaError:
                        header_cache[path] = None
                        unreadable.add(str(path))
                duration = header_cache[path]
                if duration is not None:
                    start = utterance.start or 0.0
                    stats.durations.append(max(0.0, duration - start))
                    break
    stats.missing_files = sorted(missing)
    stats.unreadable_files = sorted(unreadable)
    return stats


def render_stats(stats: Sequence[SplitStats], labels: Sequence[str]) -> "RenderableType":
    """One rich table: a column per split, rows for sizes, labels, speakers, media."""
    from rich.console import Group
    from rich.table import Table
    from ..terminal import text

    table = Table(title="dataset statistics", header_style="bold")
    table.add_column("", no_wrap=True, overflow="fold")
    for s in stats:
        table.add_column(text(s.name), justify="right")

    def row(title: str, values: list[str]) -> None:  # titles hold labels from the data: shown literally
        table.add_row(text(title), *values)

    row("dialogues", [str(s.dialogues) for s in stats])
    row("utterances", [str(s.utterances) for s in stats])
    row("turns / dialogue (mean, max)", [_mean_max(s.turns_per_dialogue) for s in stats])
    row("speakers / dialogue (mean, max)", [_mean_max(s.speakers_per_dialogue) for s in stats])
    table.add_section()
    extra = sorted({l for s in stats for l in s.labels} - set(labels))
    for label in [*labels, *extra]:
        row(f"label {label}" + (" (not in label set)" if label in extra else ""), [_share(s.labels[label], s.utterances) for s in stats])
    if any(s.unlabelled for s in stats):
        row("unlabelled", [_share(s.unlabelled, s.utterances) for s in stats])
    table.add_section()
    row("with audio", [_share(s.with_audio, s.utterances) for s in stats])
    row("with video", [_share(s.with_video, s.utterances) for s in stats])
    row("media files missing", [str(len(s.missing_files)) for s in stats])
    row("media files unreadable", [str(len(s.unreadable_files)) for s in stats])
    row("duration s (mean, max)", [_mean_max(s.durations, digits=2) for s in stats])
    row("total media hours", [f"{sum(s.durations) / 3600:.2f}" for s in stats])
    parts: list = [table]
    for s in stats:
        for kind, files in (("missing", s.missing_files), ("unreadable", s.unreadable_files)):
            for path in files[:5]:
                parts.append(text(f"{s.name}: {kind}: {path}", style="yellow"))
            if len(files) > 5:
                parts.append(text(f"{s.name}: ... and {len(files) - 5} more {kind} files", style="yellow"))
    return Group(*parts)


def _share(count: int, total: int) -> str:
    return f"{count} ({100 * count / total:.1f}%)" if total else "0"


def _mean_max(values: Sequence[float], digits: int = 1) -> str:
    if not values:
        return "-"
    return f"{sum(values) / len(values):.{digits}f}, {max(values):.{digits}f}"
