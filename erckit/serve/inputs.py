"""What a request may hold, checked before anything reaches the model.

Every refusal is a ``RequestError`` carrying its HTTP status; the app turns it
into ``{"error": message, "status": code}``. Media are given either inline, as a
``data:<type>;base64,<bytes>`` URL (written to a private temporary file for the
time of the request), or as a path relative to the ``--media-root`` the server
was started with; without one, paths are refused, and a path that resolves
outside the root (``..``, a symlink) is refused too.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.readers.jsonl import parse_dialogue_record
from ..data.types import Dialogue, Utterance
from ..errors import DataError, ErckitError
from ..predict import parse_stream_record

# A data URL's media type -> the file suffix the decoders recognise it by.
SUFFIXES = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/mpeg": ".mp3",
            "audio/flac": ".flac", "audio/ogg": ".ogg", "video/mp4": ".mp4", "video/webm": ".webm",
            "video/quicktime": ".mov", "video/x-matroska": ".mkv"}


class RequestError(ErckitError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may hold (docs/serve.md, "Limits")."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_utterances: int = 512  # per POST /v1/predict
    max_text_chars: int = 4000
    max_conversations: int = 32  # dialogue ids per WebSocket connection


class MediaStore:
    """Turns an utterance's ``audio``/``video`` string into a file the media decoders can read."""

    def __init__(self, root: Path | None, modalities: set[str], scratch: Path):
        self.root = root.resolve() if root is not None else None
        self.modalities = modalities  # the media kinds the model reads ("audio", "video")
        self.scratch = scratch

    def locator(self, written: list[Path]):
        """A ``locate(key, value, where)`` for the parsers; inline media files go into ``written``."""

        def locate(key: str, value: str, where: str) -> Path:
            if key not in self.modalities:
                reads = ", ".join(sorted(self.modalities)) or "text only"
                raise RequestError(422, f"{where}: this model reads no {key} (its media: {reads}); leave '{key}' out")
            if value.startswith("data:"):
                path = self._write_inline(key, value, where)
                written.append(path)
                return path
            return self._under_root(key, value, where)

        return locate

    def _write_inline(self, key: str, value: str, where: str) -> Path:
        header, comma, payload = value.partition(",")
        media_type = header[len("data:"):].split(";")[0].strip().lower()
        if not comma or not header.endswith(";base64"):
            raise RequestError(422, f"{where}: '{key}' data URL must be data:<type>;base64,<bytes>")
        if media_type not in SUFFIXES:
            raise RequestError(422, f"{where}: '{key}' media type {media_type!r} is not one of {', '.join(sorted(SUFFIXES))}")
        try:
            content = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(422, f"{where}: '{key}' is not valid base64") from None
        handle, name = tempfile.mkstemp(suffix=SUFFIXES[media_type], dir=self.scratch)
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        return Path(name)

    def _under_root(self, key: str, value: str, where: str) -> Path:
        if self.root is None:
            raise RequestError(403, f"{where}: '{key}' is a server-side path, and this server was started without "
                                    "--media-root; send the media inline as a base64 data URL")
        path = (self.root / value).resolve()
        if not path.is_relative_to(self.root):
            raise RequestError(403, f"{where}: '{key}' path {value!r} is outside the media root")
        return path  # a file that does not exist is predicted without it, as erckit predict does


def decode_json(body: bytes | str, where: str) -> Any:
    try:
        # Bytes decoded first: json.loads would guess UTF-16/32 from them.
        return json.loads(body if isinstance(body, str) else body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(400, f"{where}: not UTF-8") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, f"{where}: malformed JSON: {error}") from None


def _records(body: bytes, content_type: str) -> list[tuple[Any, str]]:
    """(record, where) per dialogue: a JSON object, a JSON list of them, or JSON Lines (one per line)."""
    if "ndjson" in content_type or "jsonl" in content_type:
        lines = body.split(b"\n")
        return [(decode_json(line, f"line {n}"), f"line {n}") for n, line in enumerate(lines, start=1) if line.strip()]
    value = decode_json(body, "body")
    if isinstance(value, list):
        return [(record, f"dialogue {n}") for n, record in enumerate(value)]
    return [(value, "body")]


def parse_dialogues(body: bytes, content_type: str, limits: Limits, media: MediaStore,
                    written: list[Path]) -> tuple[list[dict[str, Any]], list[Dialogue]]:
    """The request's raw records and dialogues, every limit checked; 4xx ``RequestError`` otherwise."""
    records = _records(body, content_type)
    if not records:
        raise RequestError(422, "no dialogue in the request")
    total = sum(len(r["utterances"]) for r, _ in records if isinstance(r, dict) and isinstance(r.get("utterances"), list))
    if total > limits.max_utterances:
        raise RequestError(413, f"{total} utterances in one request; at most {limits.max_utterances}")
    locate = media.locator(written)
    dialogues, seen = [], set()
    for number, (record, where) in enumerate(records):
        try:
            dialogue = parse_dialogue_record(record, where, f"dialogue-{number}", locate)
        except DataError as error:
            raise RequestError(422, str(error)) from None
        if dialogue.id in seen:
            raise RequestError(422, f"{where}: duplicate dialogue id {dialogue.id!r}")
        seen.add(dialogue.id)
        for index, utterance in enumerate(dialogue.utterances):
            check_text(utterance, f"{where}: utterance {index}", limits)
        dialogues.append(dialogue)
    return [r for r, _ in records], dialogues


def parse_turn(message: str | bytes, number: int, limits: Limits, media: MediaStore,
               written: list[Path]) -> tuple[str, Utterance]:
    """One WebSocket message: ``{"speaker", "text", "dialogue"?, "audio"?, "video"?, "label"?, "id"?, ...}``."""
    where = f"message {number}"
    try:
        dialogue, utterance = parse_stream_record(decode_json(message, where), where, media.locator(written), "conversation")
    except DataError as error:
        raise RequestError(422, str(error)) from None
    check_text(utterance, where, limits)
    return dialogue, utterance


def check_text(utterance: Utterance, where: str, limits: Limits) -> None:
    for name, value in (("text", utterance.text), ("speaker", utterance.speaker)):
        if len(value) > limits.max_text_chars:
            raise RequestError(413, f"{where}: '{name}' has {len(value)} characters; at most {limits.max_text_chars}")
