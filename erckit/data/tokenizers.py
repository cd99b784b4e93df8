"""Tokenizers built locally, with no hub and no corpus download: RoBERTa-style special tokens.

``bytes_tokenizer()`` (every byte a token) and ``word_tokenizer(texts)`` (the words of a small
corpus, as the demo data set ships) let tiny text models train offline. They sit in the data
layer because the demo writer builds one; ``erckit.hf`` names them too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_BYTES_SPECIALS_HEAD = ("<s>", "<pad>", "</s>", "<unk>")
_BYTES_MASK = "<mask>"

def bytes_tokenizer() -> "PreTrainedTokenizerBase":
    """A byte-level tokenizer with no merges and no corpus: deterministic, offline.

    Vocabulary: ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, the 256 bytes
    (4..259, in byte order, GPT-2's printable byte alphabet), ``<mask>``=260.
    Single sequences are wrapped as ``<s> ... </s>`` like RoBERTa.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = _byte_alphabet()
    vocab = {token: i for i, token in enumerate(_BYTES_SPECIALS_HEAD)}
    for byte in range(256):
        vocab[alphabet[byte]] = len(vocab)
    vocab[_BYTES_MASK] = len(vocab)

    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    # use_regex=False: no word splitting needed, every byte is its own token anyway.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return _roberta_style(backend, vocab)


def word_tokenizer(texts: "Iterable[str]") -> "PreTrainedTokenizerBase":
    """A word-level tokenizer whose vocabulary is every word of ``texts`` (lower-cased, sorted).

    For tiny models trained from scratch on small corpora (the demo data set
    ships one fit to its training split): whole words are learnt far faster
    than bytes. Same special tokens and ``<s> ... </s>`` wrapping as RoBERTa;
    words not in the vocabulary become ``<unk>``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    splitter = pre_tokenizers.Whitespace()
    words = sorted({word.lower() for text in texts for word, _ in splitter.pre_tokenize_str(text)})
    vocab = {token: i for i, token in enumerate(_BYTES_SPECIALS_HEAD)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    vocab[_BYTES_MASK] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = splitter
    return _roberta_style(backend, vocab)


def _roberta_style(backend: Any, vocab: dict[str, int]) -> "PreTrainedTokenizerBase":
    """Wrap a locally built backend with RoBERTa's special tokens and ``<s> ... </s>`` wrapping."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend.post_processor = processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]), add_prefix_space=False)
    backend.add_special_tokens([*_BYTES_SPECIALS_HEAD, _BYTES_MASK])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token=_BYTES_MASK,
        model_max_length=1_000_000,
    )


def _byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in printable}
    extra = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + extra)
            extra += 1
    return table
