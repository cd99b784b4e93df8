"""Cutting one long recording by its cues, run by hand: ``python -m bench.episode [--dialogues N] [--rounds R]``.

Writes the demo data set's episode (``erckit data demo --episode``: N test dialogues,
N=20 gives over 100 cues) and an h264 + AAC copy of it (MELD's codecs: FFmpeg probes an
AAC track by decoding some of it on every open), then times, alternating in one run,
decoding every cue's audio (16 kHz) and 8 frames (224 px):

* one open: every span from a single open of the file, in cue order, as
  ``erckit predict MEDIA --subtitles`` does (``MediaResolver.prepare`` groups the
  jobs of a file into one ``load_many``);
* one open per cue: audio and frames of a cue from their own open of the file (what
  predicting each cue as its own utterance would cost);
* two opens per cue: ``load_audio`` and ``load_frames`` separately, as a loader
  reading each medium by itself does.

On the PCM episode all three give identical tensors (checked). On the AAC copy they differ in
the first samples after a seek: an AAC decoder resumes from whatever state it had (fresh, or the
previous span's), and neither equals a decode from the start. Figures in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable


def h264_copy(source: Path, target: Path) -> Path:
    """The episode re-encoded as h264 (keyframe every 2 s) + AAC, the codecs MELD's clips use."""
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        video_in, audio_in = inp.streams.video[0], inp.streams.audio[0]
        from erckit.data.demo import FPS  # the stream's average rate is lower: the gaps have no frames

        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = video_in.width, video_in.height, "yuv420p"
        video.options = {"g": str(2 * FPS)}
        audio = out.add_stream("aac", rate=audio_in.rate)
        audio.layout = "mono"
        rate = FPS
        for frame in inp.decode(video_in):
            # Same times as the source (the episode's silent gaps have no frames), in 1/rate units.
            frame.pts, frame.time_base = round(frame.time * rate), Fraction(1, rate)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        inp.seek(0)
        for frame in inp.decode(audio_in):
            frame.pts = None
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return target


def one_open(path: Path, requests: list[tuple[Any, float, float]]) -> list[Any]:
    from erckit.data.media import load_many

    return load_many(path, requests)


def open_per_cue(path: Path, requests: list[tuple[Any, float, float]]) -> list[Any]:
    from erckit.data.media import load_many

    return [value for i in range(0, len(requests), 2) for value in load_many(path, requests[i : i + 2])]


def opens_per_medium(path: Path, requests: list[tuple[Any, float, float]]) -> list[Any]:
    from erckit.data.media import load_audio, load_frames
    from erckit.data.types import AudioSpec

    return [(load_audio if isinstance(spec, AudioSpec) else load_frames)(path, spec, start, end) for spec, start, end in requests]


METHODS: dict[str, Callable[[Path, list[tuple[Any, float, float]]], list[Any]]] = {
    "one open (erckit)": one_open,
    "one open per cue": open_per_cue,
    "two opens per cue": opens_per_medium,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=20, help="demo test dialogues in the episode (default 20: over 100 cues)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per method and file (default 3; median shown)")
    args = parser.parse_args(argv)

    import torch

    from erckit.data.demo import write_demo, write_episode
    from erckit.data.subtitles import read_cues
    from erckit.data.types import AudioSpec, VideoSpec

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_demo(root, dialogues={"train": 1, "dev": 1, "test": args.dialogues})
        episode = write_episode(root)
        cues = read_cues(episode.subtitles["srt"])
        files = {"demo episode (mpeg4 + PCM)": episode.video, "h264 + AAC copy": h264_copy(episode.video, root / "h264.mp4")}
        specs = (AudioSpec(16_000), VideoSpec(num_frames=8, size=224))
        requests = [(spec, c.start, c.end) for c in cues for spec in specs]
        print(f"{len(cues)} cues, {episode.seconds:.0f} s of 64x64 video at 10 fps; audio 16 kHz, 8 frames at 224 px per cue")
        for label, path in files.items():
            reference = one_open(path, requests)
            differences = {}
            for name, method in METHODS.items():
                results = method(path, requests)
                differences[name] = max((x.float() - y.float()).abs().max().item() for x, y in zip(results, reference))
                if "PCM" in label:  # lossless audio, intra-coded clips: every method decodes the same samples
                    assert differences[name] == 0, (name, differences[name])
            times: dict[str, list[float]] = {name: [] for name in METHODS}
            for _ in range(args.rounds):
                for name, method in METHODS.items():  # alternating: drifting machine load hits all alike
                    began = time.perf_counter()
                    method(path, requests)
                    times[name].append(time.perf_counter() - began)
            print(f"\n{label}:")
            base = statistics.median(times["one open (erckit)"])
            for name, values in times.items():
                seconds = statistics.median(values)
                print(f"  {name:20s} {len(cues) / seconds:8.1f} cues/s  ({seconds:.3f} s; {seconds / base:.2f}x erckit's time; "
                      f"max abs diff to one open {differences[name]:.3g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
