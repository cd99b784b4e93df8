"""A small synthetic multimodal ERC data set, written in seconds, deterministic by seed.

``write_demo(out_dir, seed)`` writes ``train/dev/test.jsonl`` (Dialogue JSONL),
``labels.json``, ``README.txt``, ``demo.json`` (the generator's settings) and
``media/`` with one 16 kHz mono wav and one small mp4 (mpeg4, 64x64, 10 fps, no
audio track) per utterance. Four emotions (neutral, joy, sadness, anger), each
signalled three ways:

* text: an emotion word among filler words, except for ~35% of utterances that
  are *ambiguous* (filler words only), where only audio/video tell;
* audio: a tone sequence whose pitch, tempo and loudness depend on the emotion;
* video: a background colour and a moving square whose speed depends on it.

Noise keeps it from being trivial: jittered pitch/colour/loudness, additive noise,
~12% of audio cues and ~12% of video cues drawn from another emotion, and a few
percent of utterances without video or audio (to exercise missing modalities).
Emotions persist a little within a speaker, so context helps.
"""

from __future__ import annotations

import json
import math
import logging
import time
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEMO_LABELS = ("neutral", "joy", "sadness", "anger")
DEMO_VERSION = 1
SAMPLE_RATE = 16_000
FPS = 10
SIZE = 64

log = logging.getLogger(__name__)

_LABEL_WEIGHTS = (0.40, 0.25, 0.15, 0.20)
_WORDS = {
    "neutral": ["okay", "alright", "noted", "sure", "fine"],
    "joy": ["great", "wonderful", "love", "awesome", "happy"],
    "sadness": ["sad", "miss", "lonely", "sorry", "tears"],
    "anger": ["furious", "hate", "stupid", "annoying", "unacceptable"],
}
_FILLER = [
    "the", "meeting", "is", "at", "noon", "we", "took", "train", "again", "today", "about", "that",
    "report", "kitchen", "weather", "tomorrow", "said", "went", "store", "call", "later", "maybe",
]
# (pitch Hz, tones per second, amplitude) per emotion.
_AUDIO = {"neutral": (200.0, 3.0, 0.20), "joy": (400.0, 6.0, 0.35), "sadness": (140.0, 2.0, 0.12), "anger": (300.0, 8.0, 0.60)}
# (background RGB, square speed in px per frame) per emotion.
_VIDEO = {
    "neutral": ((128, 128, 128), 1),
    "joy": ((230, 200, 40), 4),
    "sadness": ((40, 70, 200), 0),
    "anger": ((210, 40, 40), 6),
}
_SPEAKERS = ["Ava", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana"]


@dataclass
class DemoSettings:
    seed: int = 0
    dialogues: dict[str, int] = field(default_factory=lambda: {"train": 60, "dev": 15, "test": 20})
    min_turns: int = 4
    max_turns: int = 8
    ambiguous: float = 0.35  # share of utterances with filler-only text
    cue_noise: float = 0.12  # chance that the audio (video) cue comes from another emotion
    no_video: float = 0.04
    no_audio: float = 0.03
    version: int = DEMO_VERSION


@dataclass
class DemoSummary:
    root: Path
    dialogues: dict[str, int]
    utterances: dict[str, int]
    labels: dict[str, int]
    ambiguous: int
    without_audio: int
    without_video: int
    seconds: float


def write_demo(out_dir: str | Path, seed: int = 0, **settings: Any) -> DemoSummary:
    """Write the demo data set into ``out_dir`` (created; its demo files are overwritten).

    ``settings`` override ``DemoSettings`` fields (e.g. ``dialogues={"train": 10, ...}``).
    The JSONL files are byte-identical for equal seeds and settings.
    """
    import numpy as np

    began = time.perf_counter()
    config = DemoSettings(seed=seed, **settings)
    root = Path(out_dir).expanduser().absolute()
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = {label: 0 for label in DEMO_LABELS}
    summary = DemoSummary(root, {}, {}, counts, 0, 0, 0, 0.0)
    for split, count in config.dialogues.items():
        lines = []
        for number in range(count):
            dialogue_id = f"{split}{number:03d}"
            turns = _dialogue(rng, config, dialogue_id, media, summary)
            lines.append(json.dumps({"id": dialogue_id, "utterances": turns}, sort_keys=True))
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        summary.dialogues[split] = count
        summary.utterances[split] = sum(len(json.loads(l)["utterances"]) for l in lines)
    (root / "labels.json").write_text(json.dumps(list(DEMO_LABELS)) + "\n", encoding="utf-8")
    _write_tokenizer(root)
    (root / "demo.json").write_text(json.dumps(asdict(config), sort_keys=True) + "\n", encoding="utf-8")
    (root / "README.txt").write_text(_readme(config), encoding="utf-8")
    summary.seconds = time.perf_counter() - began
    return summary


def _write_tokenizer(root: Path) -> None:
    """A word-level tokenizer fit to the training split, for tiny text models (see erckit.data.tokenizers.word_tokenizer)."""
    from .tokenizers import word_tokenizer

    texts = [
        turn["text"]
        for line in (root / "train.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
        for turn in json.loads(line)["utterances"]
    ]
    word_tokenizer(texts).save_pretrained(str(root / "tokenizer"))


def ensure_demo(root: str | Path, seed: int = 0, **settings: Any) -> Path:
    """``root`` holding the demo for these settings, generating it if absent.

    Generation happens in a temporary sibling directory renamed into place, so
    concurrent callers (several ranks) never see a half-written data set. An
    existing non-demo directory is never overwritten.
    """
    from ..errors import DataError

    root = Path(root).expanduser().absolute()
    wanted = asdict(DemoSettings(seed=seed, **settings))
    marker = root / "demo.json"
    if marker.is_file():
        if json.loads(marker.read_text(encoding="utf-8")) == wanted:
            return root
        raise DataError(
            f"{root} holds a demo data set made with other settings ({marker}); "
            "delete it or choose another root"
        )
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root} exists and is not an erckit demo data set; choose another root")
    from ..errors import WriteError
    from ..fileio import atomic_directory

    log.info("generating the demo data set in %s (first use) ...", root)
    try:
        with atomic_directory(root) as staging:
            summary = write_demo(staging, seed, **settings)
    except WriteError:
        if not (root / "demo.json").is_file():  # someone else won the race only if it is there
            raise
    else:
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        log.info("demo data set written to %s: %d utterances, %.0f MB, %.1f s", root,
                 sum(summary.utterances.values()), size / 1e6, summary.seconds)
    return root


def _dialogue(rng: Any, config: DemoSettings, dialogue_id: str, media: Path, summary: DemoSummary) -> list[dict[str, Any]]:
    speakers = list(rng.choice(_SPEAKERS, size=int(rng.integers(2, 4)), replace=False))
    length = int(rng.integers(config.min_turns, config.max_turns + 1))
    mood: dict[str, str] = {}
    turns = []
    for index in range(length):
        speaker = str(speakers[index % len(speakers)] if rng.random() < 0.7 else rng.choice(speakers))
        if speaker in mood and rng.random() < 0.4:
            label = mood[speaker]  # emotional inertia: context carries signal
        else:
            label = str(rng.choice(DEMO_LABELS, p=_LABEL_WEIGHTS))
        mood[speaker] = label
        summary.labels[label] += 1
        ambiguous = rng.random() < config.ambiguous
        summary.ambiguous += int(ambiguous)
        duration = float(rng.uniform(0.8, 1.4))
        stem = f"{dialogue_id}_{index}"
        turn: dict[str, Any] = {"id": stem, "speaker": speaker, "text": _text(rng, label, ambiguous), "label": label}
        audio_cue = _noisy_cue(rng, label, config.cue_noise)
        video_cue = _noisy_cue(rng, label, config.cue_noise)
        if rng.random() < config.no_audio:
            summary.without_audio += 1
        else:
            _write_wav(media / f"{stem}.wav", _tone(rng, audio_cue, duration))
            turn["audio"] = f"media/{stem}.wav"
        if rng.random() < config.no_video:
            summary.without_video += 1
        else:
            _write_mp4(media / f"{stem}.mp4", _frames(rng, video_cue, duration))
            turn["video"] = f"media/{stem}.mp4"
        turns.append(turn)
    return turns


def _noisy_cue(rng: Any, label: str, noise: float) -> str:
    return str(rng.choice(DEMO_LABELS)) if rng.random() < noise else label


def _text(rng: Any, label: str, ambiguous: bool) -> str:
    words = [str(w) for w in rng.choice(_FILLER, size=int(rng.integers(4, 9)))]
    if not ambiguous:
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(_WORDS[label])))
    return " ".join(words).capitalize() + "."


def _tone(rng: Any, cue: str, duration: float) -> Any:
    import numpy as np

    pitch, tempo, amplitude = _AUDIO[cue]
    pitch *= rng.uniform(0.85, 1.15)
    amplitude *= rng.uniform(0.7, 1.3)
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    # Tones switch on and off ``tempo`` times a second; pitch wobbles a little per tone.
    gate = (np.sin(2 * np.pi * tempo * t) > -0.2).astype(np.float32)
    wobble = 1 + 0.05 * np.sin(2 * np.pi * tempo / 2 * t)
    signal = amplitude * gate * np.sin(2 * np.pi * pitch * wobble * t)
    signal += rng.normal(0, 0.04, size=t.shape)
    return np.clip(signal, -1, 1)


def _frames(rng: Any, cue: str, duration: float) -> Any:
    import numpy as np

    colour, speed = _VIDEO[cue]
    count = max(2, int(round(duration * FPS)))
    background = np.clip(np.array(colour) + rng.integers(-40, 41, size=3), 0, 255)
    frames = np.empty((count, SIZE, SIZE, 3), dtype=np.uint8)
    x, y = int(rng.integers(0, SIZE - 16)), int(rng.integers(0, SIZE - 16))
    for i in range(count):
        image = np.broadcast_to(background, (SIZE, SIZE, 3)).astype(np.int16)
        image = image + rng.integers(-12, 13, size=(SIZE, SIZE, 1))
        left = (x + speed * i) % (SIZE - 16)
        top = y if speed < 5 else (y + int(rng.integers(-3, 4))) % (SIZE - 16)  # anger shakes
        image[top : top + 16, left : left + 16] = 245
        frames[i] = np.clip(image, 0, 255)
    return frames


def _write_wav(path: Path, signal: Any) -> None:

    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes((signal * 32767).astype("<i2").tobytes())


def _write_mp4(path: Path, frames: Any) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height = SIZE, SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "3"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _readme(config: DemoSettings) -> str:
    return f"""erckit demo data set (synthetic, seed {config.seed}, generator v{config.version})

Files: train.jsonl, dev.jsonl, test.jsonl (Dialogue JSONL, media paths relative to this
directory), labels.json (label order), media/*.wav (16 kHz mono), media/*.mp4 (64x64, {FPS} fps).
Labels: {', '.join(DEMO_LABELS)}.

Each emotion shows in the words (except ~{config.ambiguous:.0%} ambiguous utterances with filler
words only), in the audio (pitch, tempo, loudness of a tone sequence) and in the video
(background colour, speed of a moving square). About {config.cue_noise:.0%} of audio and of video
cues come from another emotion; {config.no_audio:.0%} of utterances have no audio and
{config.no_video:.0%} no video. Regenerate with: erckit data demo <dir> --seed {config.seed}
"""


# ------------------------------------------------------------------ episode

EPISODE_GAP_SECONDS = 2.0  # silence between two dialogues of the episode


@dataclass
class EpisodeSummary:
    video: Path  # the episode: one mp4, mpeg4 video + 16-bit PCM audio
    subtitles: dict[str, Path]  # "srt" / "vtt" -> the subtitle file, speakers tagged
    dialogues: Path  # the same utterances as dialogue JSONL: each a span of its own clip files
    cues: int
    seconds: float  # the episode's length


def write_episode(root: str | Path, split: str = "test", *, dialogues: int | None = None,
                  gap_seconds: float = EPISODE_GAP_SECONDS) -> EpisodeSummary:
    """Concatenate the clips of a demo split into one long "episode", as a TV episode before MELD cut it.

    Writes ``episode.mp4``, ``episode.srt`` (``Speaker: text`` cues), ``episode.vtt``
    (``<v Speaker>`` voice tags) and ``episode.jsonl``, the same utterances as
    dialogues whose spans cut the separate clip files. Only utterances with both
    clips are used; dialogues are ``gap_seconds`` of silence apart (``--gap``
    finds them again).

    The episode's media equal the clips' by construction: the video packets are
    copied, not re-encoded (each clip starts on a keyframe and the mpeg4
    encoder makes no B-frames, so every frame decodes to the same pixels), and
    the audio is the clips' 16-bit samples as PCM. Each clip gets a slot of
    whole video frames; its cue lasts as long as both its clips, in whole
    milliseconds (subtitle times are in ms), so cue times are exact in samples.
    """
    import av
    import numpy as np

    from ..fileio import atomic_path, atomic_write_bytes

    root = Path(root).expanduser().absolute()
    lines = (root / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()][:dialogues]
    cues: list[tuple[float, float, str, str]] = []
    equivalent: list[str] = []
    cursor = 0  # in video frames
    with atomic_path(root / "episode.mp4") as temp, av.open(str(temp), "w", format="mp4") as out:
        audio = out.add_stream("pcm_s16le", rate=SAMPLE_RATE)
        audio.layout = "mono"
        video = None
        written_samples = 0

        def write_samples(samples: Any) -> None:
            nonlocal written_samples
            frame = av.AudioFrame.from_ndarray(samples.astype("<i2")[None], format="s16", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, written_samples
            for packet in audio.encode(frame):
                out.mux(packet)
            written_samples += samples.size

        for record in records:
            turns = []
            for turn in record["utterances"]:
                if "audio" not in turn or "video" not in turn:
                    continue
                with wave.open(str(root / turn["audio"]), "rb") as handle:
                    samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
                with av.open(str(root / turn["video"])) as clip:
                    source = clip.streams.video[0]
                    if video is None:
                        video = out.add_stream_from_template(source)
                    packets = [p for p in clip.demux(source) if p.size]
                    shift = int(round(cursor / FPS / source.time_base))
                    for packet in packets:
                        packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                        packet.stream = video
                        out.mux(packet)
                slot = max(len(packets), -(-samples.size // (SAMPLE_RATE // FPS)))
                write_samples(np.pad(samples, (0, slot * SAMPLE_RATE // FPS - samples.size)))
                length = math.floor(min(samples.size / SAMPLE_RATE, len(packets) / FPS) * 1000) / 1000
                start = cursor / FPS
                cues.append((start, round(start + length, 3), turn["speaker"], turn["text"]))
                turns.append({**turn, "start": 0.0, "end": length})
                cursor += slot
            if turns:
                equivalent.append(json.dumps({"id": record["id"], "utterances": turns}, sort_keys=True))
                gap = int(round(gap_seconds * FPS))
                write_samples(np.zeros(gap * SAMPLE_RATE // FPS, dtype="<i2"))
                cursor += gap
        for packet in audio.encode(None):
            out.mux(packet)
    stamp = lambda seconds, mark: f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}".replace(".", mark)
    srt = "".join(f"{n}\n{stamp(s, ',')} --> {stamp(e, ',')}\n{who}: {text}\n\n" for n, (s, e, who, text) in enumerate(cues, 1))
    vtt = "WEBVTT\n\n" + "".join(f"{stamp(s, '.')} --> {stamp(e, '.')}\n<v {who}>{text}\n\n" for s, e, who, text in cues)
    atomic_write_bytes(root / "episode.srt", srt.encode("utf-8"))
    atomic_write_bytes(root / "episode.vtt", vtt.encode("utf-8"))
    atomic_write_bytes(root / "episode.jsonl", ("\n".join(equivalent) + "\n").encode("utf-8"))
    return EpisodeSummary(root / "episode.mp4", {"srt": root / "episode.srt", "vtt": root / "episode.vtt"},
                          root / "episode.jsonl", len(cues), cursor / FPS)
