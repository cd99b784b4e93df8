"""Tiny untrained models and media for the predict/evaluate tests (built in milliseconds, no training).

Imported by test modules (``tests/`` is on sys.path through its conftest.py).
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path
from typing import Any

LABELS = ["neutral", "joy", "anger"]


def text_recipe(context: bool = True) -> dict[str, Any]:
    """Bag of words over the target utterance (plus its context with ``context``)."""
    return {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {"encoders": {"text": {"factory": "example.BagOfWords.v1", "buckets": 64, "dim": 16, "context": context}}},
        "stages": [{"kind": "supervised", "encoders": ["text"]}],
    }


def teacher_recipe() -> dict[str, Any]:
    """TelME's text teacher on a tiny random RoBERTa with the local byte tokenizer (HF assets saved)."""
    return {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {"encoders": {"text": {
            "factory": "telme.RobertaTeacher.v1", "tokenizer": "erckit:bytes", "max_length": 64, "embedding_dim": 16,
            "config": {"model_type": "roberta", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 64, "max_position_embeddings": 130, "vocab_size": 270},
        }}},
        "stages": [{"kind": "supervised", "encoders": ["text"]}],
    }


def multimodal_recipe() -> dict[str, Any]:
    return {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {
            "encoders": {
                "text": {"factory": "example.BagOfWords.v1", "buckets": 64, "dim": 16, "context": True},
                "audio": {"factory": "erckit.LogMelAudio.v1", "n_mels": 16, "dim": 16, "layers": 1, "heads": 2},
            },
            "fuser": {"factory": "erckit.ConcatFuser.v1", "hidden": 16},
        },
        "stages": [
            {"kind": "supervised", "encoders": ["text", "audio"]},
            {"kind": "fuse"},
        ],
    }


def build_model(raw: dict[str, Any], labels: list[str] = LABELS, seed: int = 0) -> Any:
    import torch

    from erckit.model import ERCModel
    from erckit.recipe.load import validate

    torch.manual_seed(seed)
    model = ERCModel.from_recipe(validate(raw, "test"), labels)
    return model.eval()


def save_model(directory: Path, raw: dict[str, Any] | None = None) -> Path:
    """A saved untrained model directory (text-only by default)."""
    build_model(raw or text_recipe()).save_pretrained(directory)
    return directory


def write_wav(path: Path, seconds: float = 0.5, rate: int = 16_000, tone: float = 440.0) -> Path:
    """A mono 16-bit sine wave, written with the stdlib ``wave`` module."""
    frames = int(seconds * rate)
    samples = (int(12_000 * math.sin(2 * math.pi * tone * i / rate)) for i in range(frames))
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def byte_bpe_tokenizer(texts: list[str], directory: Path, vocab_size: int = 1000) -> Path:
    """A RoBERTa-style byte-level BPE tokenizer (merges with ``Ġ`` space markers) trained on ``texts``, saved to ``directory``.

    Same pre-tokenisation as RoBERTa/GPT-2 (ByteLevel, regex word split, no
    prefix space) and the same special tokens, so space markers behave as in
    ``roberta-large``; built locally in well under a second.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer)
    backend.post_processor = processors.RobertaProcessing(("</s>", backend.token_to_id("</s>")), ("<s>", backend.token_to_id("<s>")))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>", model_max_length=512,
    )
    tokenizer.save_pretrained(str(directory))
    return directory


def roberta_tokenizer_files(texts: list[str], directory: Path, vocab_size: int = 400) -> Path:
    """vocab.json + merges.txt (byte-level BPE, RoBERTa's special tokens) trained on ``texts``, as roberta-large ships them.

    With a tokenizer_config naming ``RobertaTokenizer``, so both ``AutoTokenizer`` and
    ``RobertaTokenizer.from_pretrained`` read the folder.
    """
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    directory.mkdir(parents=True, exist_ok=True)
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer)
    backend.model.save(str(directory))
    (directory / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "RobertaTokenizer"}))
    return directory
