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


def episode_recipe() -> dict[str, Any]:
    """``multimodal_recipe`` + video (a tiny random TimeSformer over 4 frames of 64 px): every medium of an episode counts."""
    raw = multimodal_recipe()
    raw["model"]["encoders"]["visual"] = {"factory": "telme.VisualStudent.v1", "frames": 4, "config": {
        "model_type": "timesformer", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "image_size": 64, "patch_size": 16}}
    raw["stages"][0]["encoders"] = ["text", "audio", "visual"]
    return raw


def demo_episode(directory: Path, test_dialogues: int = 4) -> Any:
    """A small demo data set plus its episode (``write_episode``'s summary): seconds to write."""
    from erckit.data.demo import write_demo, write_episode

    write_demo(directory, dialogues={"train": 1, "dev": 1, "test": test_dialogues})
    return write_episode(directory)


def tiny_whisper(directory: Path) -> Path:
    """A random 1-layer Whisper with a byte-level vocabulary and Whisper's special and timestamp tokens,
    saved with its tokenizer and feature extractor: ``pipeline("automatic-speech-recognition")`` loads it
    offline and returns timestamped chunks (of random text: it checks plumbing, not words)."""
    import json

    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {symbol: i for i, symbol in enumerate(bytes_to_unicode().values())}
    end = vocab["<|endoftext|>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = WhisperTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), unk_token="<|endoftext|>",
                                 bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    specials = ["<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                "<|nocaptions|>", "<|notimestamps|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])  # timestamp tokens follow <|notimestamps|>
    start, no_timestamps = (tokenizer.convert_tokens_to_ids(t) for t in ("<|startoftranscript|>", "<|notimestamps|>"))
    config = WhisperConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80, max_target_positions=64,
        decoder_start_token_id=start, eos_token_id=end, pad_token_id=end, bos_token_id=end,
        begin_suppress_tokens=None, suppress_tokens=None,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start, eos_token_id=end, pad_token_id=end, no_timestamps_token_id=no_timestamps,
        is_multilingual=False, max_initial_timestamp_index=50, max_length=32,
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(directory)
    return directory


TINY_ROBERTA = {"model_type": "roberta", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 64, "max_position_embeddings": 130, "vocab_size": 270}
TINY_DATA2VEC_AUDIO = {"model_type": "data2vec-audio", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 64, "conv_dim": [16, 16, 16], "conv_kernel": [10, 3, 3], "conv_stride": [5, 2, 2],
                       "num_conv_pos_embeddings": 3, "conv_pos_kernel_size": 5, "num_conv_pos_embedding_groups": 2}
TINY_TIMESFORMER = {"model_type": "timesformer", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                    "intermediate_size": 64, "image_size": 32, "patch_size": 16}


def telme_recipe() -> dict[str, Any]:
    """TelME's three encoders (tiny random RoBERTa, data2vec-audio, TimeSformer) and its ASF fuser."""
    return {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {
            "encoders": {
                "text": {"factory": "telme.RobertaTeacher.v1", "tokenizer": "erckit:bytes", "max_length": 64,
                         "embedding_dim": 32, "config": TINY_ROBERTA},
                "audio": {"factory": "telme.AudioStudent.v1", "config": TINY_DATA2VEC_AUDIO, "max_seconds": 2.0},
                "visual": {"factory": "telme.VisualStudent.v1", "config": TINY_TIMESFORMER, "frames": 2},
            },
            "fuser": {"factory": "telme.ASF.v1", "dim": 32, "heads": 2},
        },
        "stages": [{"kind": "supervised", "encoders": ["text", "audio", "visual"]}, {"kind": "fuse"}],
    }


def builtin_media_recipe(fuser: dict[str, Any] | None = None) -> dict[str, Any]:
    """``multimodal_recipe`` + the built-in timm frame encoder (timm's tiny test_resnet), with ``fuser`` (ModalityShift)."""
    raw = multimodal_recipe()
    raw["model"]["encoders"]["visual"] = {
        "factory": "erckit.TimmFrames.v2", "backbone": "test_resnet", "frames": 2, "size": 32, "dim": 16,
    }
    raw["model"]["fuser"] = fuser or {"factory": "erckit.ModalityShift.v1", "dim": 16, "heads": 2}
    raw["stages"][0]["encoders"] = ["text", "audio", "visual"]
    return raw
