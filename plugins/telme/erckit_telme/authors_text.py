"""The teacher's token ids as TelME's authors produced them (``preprocessing = "authors"``).

Their training data joins, for every utterance of the context, ``'<s' + k + '> ' + text + ' '``,
strips the whole, appends ``' </s> Now <sK> feels'``, tokenises that string with the slow
``RobertaTokenizer.tokenize`` of transformers 4.27.2 (the nine speaker tokens added as
``additional_special_tokens``), keeps the last 511 tokens and appends the mask id. Their released
teacher was trained on exactly those ids, which differ from erckit's prompt in three ways:

* Under 4.27 a special token added as a plain string eats the whitespace on both sides of it;
  RoBERTa's own ``<s>``, ``</s>``, ``<pad>``, ``<unk>`` eat none and ``<mask>`` eats the whitespace on
  its left. Hence ``<s1> Hi Ġyou ... Ġ </s> ĠNow <s2> feels <mask>`` where erckit has
  ``<s1> ĠHi ... </s> ĠNow <s2> Ġfeels <mask>``.
* Any of those tokens written in an utterance IS that token, not text.
* Only ``<s1>``..``<s9>`` exist: a speaker numbered 10 or more is the plain text ``<s10>``.

Transformers 5 no longer tokenises this way, so the string is split at those tokens and stripped
here, and only the plain-text parts go through the tokenizer (the same byte-level BPE).
``bench/telme_tokens.py`` checks the result against transformers 4.27.2 on MELD dev.

Cost: a speaker token's stripping reaches only its immediate neighbours and BPE never crosses a
special token, so the string splits exactly before every speaker token. Each segment from one
speaker token to the next is tokenised once (``PieceCache``) and a sample reads only the latest
segments that fill the budget (``context_tail``). An utterance numbered above 9 has no speaker
token and joins the segment before it.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, Sequence

from erckit.data.context import PieceCache, context_tail
from erckit.data.types import Sample

# The whitespace a special token ate under 4.27: (on its left, on its right).
_OWN_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token")
_EATS_NOTHING, _EATS_LEFT, _EATS_BOTH = (False, False), (True, False), (True, True)


class AuthorsPrompt:
    """``ids(sample)``: the authors' token ids for one sample, cut to the last ``budget`` and the mask appended."""

    def __init__(self, tokenizer: Any, speaker_tokens: Sequence[str], budget: int | None):
        self.tokenizer = tokenizer
        self.budget = budget
        eats = {str(token): _EATS_NOTHING for token in (getattr(tokenizer, name) for name in _OWN_TOKENS) if token}
        eats[str(tokenizer.mask_token)] = _EATS_LEFT
        eats.update({token: _EATS_BOTH for token in speaker_tokens})
        self._eats = eats
        self._speakers = frozenset(speaker_tokens)
        self._special_ids = {token: tokenizer.convert_tokens_to_ids(token) for token in eats}
        # Longest first, as 4.27's trie matched (none of RoBERTa's is a prefix of another anyway).
        self._splitter = re.compile("|".join(re.escape(token) for token in sorted(eats, key=len, reverse=True)))
        self._segments = PieceCache(lambda key: self.encode(*key), keep=budget)
        self._prompts = PieceCache(lambda speaker: self.encode(f"</s> Now <s{speaker}> feels"), capacity=64)

    def encode(self, text: str, speaker_follows: bool = False) -> list[int]:
        """The ids 4.27's ``tokenize`` + ``convert_tokens_to_ids`` gave ``text``.

        ``speaker_follows``: ``text`` is cut from a longer string just before a speaker token,
        which strips the whitespace at the end of ``text``.
        """
        parts: list[tuple[str, bool]] = []  # (text, is a special token)
        start = 0
        for match in self._splitter.finditer(text):
            if match.start() > start:
                parts.append((text[start : match.start()], False))
            parts.append((match.group(), True))
            start = match.end()
        if start < len(text):
            parts.append((text[start:], False))

        plain: list[str] = []
        layout: list[int | None] = []  # a special token's id, or None for the next plain part
        for i, (part, special) in enumerate(parts):
            if special:
                layout.append(self._special_ids[part])
                continue
            # A plain part's neighbours are special tokens (or the ends of ``text``).
            if i > 0 and self._eats[parts[i - 1][0]][1]:
                part = part.lstrip()
            if self._eats[parts[i + 1][0]][0] if i + 1 < len(parts) else speaker_follows:
                part = part.rstrip()
            if part:
                layout.append(None)
                plain.append(part)
        encoded = iter(self.tokenizer(plain, add_special_tokens=False, split_special_tokens=True)["input_ids"] if plain else ())
        ids: list[int] = []
        for token in layout:
            if token is None:
                ids.extend(next(encoded))
            else:
                ids.append(token)
        return ids

    def prompt(self, speaker: int) -> tuple[int, ...]:
        """``</s> Now <sK> feels``: what follows the context (the space before ``</s>`` ends the context)."""
        return self._prompts(speaker)

    def _pieces_newest_first(self, sample: Sample) -> Iterator[Sequence[int]]:
        """One piece per utterance, newest first: a segment's ids on its newest utterance, () on the others."""
        context, numbers = sample.context, sample.speaker_ids
        last = len(context) - 1
        pending: list[str] = []
        target_segment = True
        for i in range(last, -1, -1):
            piece = f"<s{numbers[i]}> {context[i].text} "
            # make_batchs strips the joined context (only its last piece can end in whitespace),
            # then adds ' </s> ...': that space stays with the context.
            pending.append(piece.rstrip() + " " if i == last else piece)
            if i > 0 and f"<s{numbers[i]}>" not in self._speakers:
                continue
            ids = self._segments(("".join(reversed(pending)), not target_segment))
            yield (*ids, *self.prompt(numbers[last])) if target_segment else ids
            yield from [()] * (len(pending) - 1)
            pending, target_segment = [], False

    def ids(self, sample: Sample, *, reporter: str, limit: int | None) -> list[int]:
        ids = context_tail(sample, self._pieces_newest_first(sample), self.budget, reporter=reporter, limit=limit)
        ids.append(self.tokenizer.mask_token_id)
        return ids
