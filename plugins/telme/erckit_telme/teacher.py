"""TelME's text teacher: a masked-LM encoder read at a ``<mask>`` prompt.

Input for a target utterance spoken by speaker K, with causal context
u_1..u_n (u_n the target) spoken by speakers k_1..k_n::

    <s{k_1}> u_1 <s{k_2}> u_2 ... <s{k_n}> u_n SEP Now <sK> feels MASK

SEP and MASK are the tokenizer's own (``</s>``/``<mask>`` for RoBERTa,
``[SEP]``/``[MASK]`` for BERT). Each piece is tokenized separately with special
tokens split, so an utterance that literally contains ``<mask>`` or ``<s3>``
stays text instead of injecting control tokens. The token sequence is cut from
the left (oldest context goes first) so that the prompt and the mask always
survive: ``limit - 1`` tokens are kept, then the mask (TelME: the last 511 + the
mask for RoBERTa's 512 positions).

Each utterance's text is tokenised once (``PieceCache``) and a sample reads
only the latest utterances that fill the budget (``context_tail``), so the
cost per sample does not grow with the dialogue: the ids are exactly those of
tokenising every piece of the whole context and cutting from the left.

Speakers are numbered by first appearance within the dialogue. There are nine
speaker tokens; speakers 10, 11, ... all share ``<s9>``, read as "yet another
speaker". Folding (rather than modulo) never confuses a late speaker with an
early one such as the current speaker.

That is ``preprocessing = "erckit"`` (the default). ``"authors"`` instead builds
the token ids TelME's authors trained their released teacher on
(``authors_text``: their string tokenised as transformers 4.27 did, literal
special tokens in the text kept special, speakers past the ninth as plain text,
the last 511 tokens + the mask, left padding by default).

The mask position's last hidden state -> ``Linear(hidden, embedding_dim)`` (the
teacher embedding, 768 in TelME) -> ``Linear(embedding_dim, C)`` (logits).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from erckit.components import Encoder, Features, ModalityOutput
from erckit.data.context import PieceCache, context_tail
from erckit.data.types import Sample
from erckit.errors import ErckitError
from erckit.hf import load_backbone, load_tokenizer, save_backbone_config, usable_positions

from .authors_text import AuthorsPrompt

SPEAKER_TOKENS = tuple(f"<s{i}>" for i in range(1, 10))
PROMPT_VERSION = "telme-prompt-v1"  # bump if the token layout ever changes (cache keys)


def speaker_token(speaker_id: int) -> str:
    """``<s1>``..``<s9>``; every speaker past the ninth folds into ``<s9>``."""
    if speaker_id < 1:
        raise ErckitError(f"speaker ids are 1-based, got {speaker_id}")
    return SPEAKER_TOKENS[min(speaker_id, len(SPEAKER_TOKENS)) - 1]


def mask_positions(attention_mask: Tensor) -> Tensor:
    """[B, L] attention mask -> [B] index of each row's last real token.

    The mask token is always the last real token, so locating it from the
    attention mask works for left and right padding alike (and never confuses
    it with a mask id elsewhere in the row).
    """
    length = attention_mask.shape[1]
    return length - 1 - attention_mask.flip(1).argmax(dim=1)


class RobertaTeacher(Encoder):
    modality = "text"

    def __init__(
        self,
        num_classes: int,
        pretrained: str,
        tokenizer: str | None,
        config: dict | None,
        max_length: int | None,
        embedding_dim: int,
        padding_side: Literal["right", "left"] | None,
        preprocessing: Literal["erckit", "authors"] = "erckit",
        config_overrides: dict | None = None,
    ):
        super().__init__()
        if preprocessing not in ("erckit", "authors"):
            raise ErckitError(f"preprocessing must be 'erckit' or 'authors', got {preprocessing!r}")
        self.num_classes = num_classes
        self.dim = embedding_dim
        self.preprocessing = preprocessing
        # The authors padded on the left; erckit's default is the right (results do not depend on it).
        self.padding_side = padding_side or ("left" if preprocessing == "authors" else "right")
        self.tokenizer = load_tokenizer(tokenizer or pretrained)
        for required in ("sep_token", "mask_token", "pad_token"):
            if getattr(self.tokenizer, required) is None:
                raise ErckitError(f"tokenizer {tokenizer or pretrained!r} has no {required}; the TelME prompt needs one")
        self.tokenizer.add_special_tokens({"extra_special_tokens": list(SPEAKER_TOKENS)}, replace_extra_special_tokens=False)

        self.backbone = load_backbone("AutoModel", pretrained, config, config_overrides)
        if self.backbone.get_input_embeddings().num_embeddings < len(self.tokenizer):
            self.backbone.resize_token_embeddings(len(self.tokenizer))
        # The pooler is never used; dropping it keeps every parameter in the
        # graph (DDP without find_unused_parameters) and out of the checkpoint.
        if getattr(self.backbone, "pooler", None) is not None:
            self.backbone.pooler = None

        hidden = self.backbone.config.hidden_size
        self.project = nn.Linear(hidden, embedding_dim)
        self.classifier = nn.Linear(embedding_dim, num_classes)

        positions = usable_positions(self.backbone)
        limits = [n for n in (max_length, positions) if n is not None]
        self.limit: int | None = min(limits) if limits else None
        self._ids = {token: self.tokenizer.convert_tokens_to_ids(token) for token in SPEAKER_TOKENS}
        self._now_feels = self._encode([" Now", " feels"])
        self._authors: AuthorsPrompt | None = None
        if preprocessing == "authors":
            # Their cut keeps the last limit - 1 tokens, prompt included (511 for RoBERTa).
            self._authors = AuthorsPrompt(self.tokenizer, SPEAKER_TOKENS, None if self.limit is None else self.limit - 1)
            longest_prompt = len(self._authors.prompt(len(SPEAKER_TOKENS)))
        else:
            longest_prompt = len(self._prompt_ids(self._ids[SPEAKER_TOKENS[-1]]))
        if self.limit is not None and self.limit - 1 <= longest_prompt:
            raise ErckitError(
                f"max_length {self.limit} leaves no room for context: the prompt alone takes "
                f"{longest_prompt + 1} tokens; use a larger max_length"
            )
        # Context tokens that fit before the prompt and the mask (every prompt has the same length).
        self.context_budget: int | None = None if self.limit is None else self.limit - 1 - longest_prompt
        self._texts = PieceCache(self._encode_text, keep=self.context_budget)

    # -- featurize -------------------------------------------------------------------

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)
        return [list(ids) for ids in encoded["input_ids"]]

    def _encode_text(self, text: str) -> list[int]:
        """One utterance's piece after its speaker token, as it is tokenised in any context."""
        return self._encode([" " + text.strip()])[0]

    def _prompt_ids(self, speaker: int) -> list[int]:
        now, feels = self._now_feels
        return [self.tokenizer.sep_token_id, *now, speaker, *feels]

    def prompt_ids(self, sample: Sample) -> list[int]:
        """The token ids of ``sample`` before padding: context, prompt, mask (truncated)."""
        if len(sample.speaker_ids) != len(sample.context):
            raise ErckitError(f"sample {sample.key}: {len(sample.context)} utterances but {len(sample.speaker_ids)} speaker ids")
        if self._authors is not None:
            if min(sample.speaker_ids, default=1) < 1:
                raise ErckitError(f"sample {sample.key}: speaker ids are 1-based, got {min(sample.speaker_ids)}")
            return self._authors.ids(sample, reporter="telme.RobertaTeacher", limit=self.limit)
        pieces = (
            (self._ids[speaker_token(speaker)], *self._texts(utterance.text))
            for utterance, speaker in zip(reversed(sample.context), reversed(sample.speaker_ids))
        )
        ids = context_tail(sample, pieces, self.context_budget, reporter="telme.RobertaTeacher", limit=self.limit)
        ids.extend(self._prompt_ids(self._ids[speaker_token(sample.speaker_ids[-1])]))
        ids.append(self.tokenizer.mask_token_id)
        return ids

    def context_window(self) -> int | None:
        # Every utterance adds at least its speaker token (authors: at least the text "<s10>"):
        # no more of them fit in the budget.
        return self.context_budget if self._authors is None else self._authors.budget

    def featurize(self, sample: Sample) -> Features:
        return {"input_ids": torch.tensor(self.prompt_ids(sample), dtype=torch.long)}

    def collate(self, features: Sequence[Features]) -> Features:
        """Pad with the tokenizer's pad id on ``padding_side``; attention_mask marks real tokens."""
        longest = max(f["input_ids"].shape[0] for f in features)
        input_ids = torch.full((len(features), longest), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros(len(features), longest, dtype=torch.long)
        for row, f in enumerate(features):
            n = f["input_ids"].shape[0]
            span = slice(0, n) if self.padding_side == "right" else slice(longest - n, longest)
            input_ids[row, span] = f["input_ids"]
            attention_mask[row, span] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def length(self, features: Features) -> int:
        return int(features["input_ids"].shape[0])

    # -- forward ---------------------------------------------------------------------

    def forward(self, batch: Features) -> ModalityOutput:
        """input_ids/attention_mask [B, L] -> embedding [B, embedding_dim], logits [B, C]."""
        attention_mask = batch["attention_mask"]
        hidden = self.backbone(input_ids=batch["input_ids"], attention_mask=attention_mask).last_hidden_state
        at_mask = hidden[torch.arange(hidden.shape[0], device=hidden.device), mask_positions(attention_mask)]
        embedding = self.project(at_mask)
        return ModalityOutput(embedding=embedding, logits=self.classifier(embedding))

    # -- assets ----------------------------------------------------------------------

    def fingerprint(self) -> str:
        vocabulary = hashlib.sha1(self.tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16] if hasattr(
            self.tokenizer, "backend_tokenizer"
        ) else f"{type(self.tokenizer).__name__}:{len(self.tokenizer)}"
        return f"telme.RobertaTeacher:{PROMPT_VERSION}:preprocessing={self.preprocessing}:tokenizer={vocabulary}:limit={self.limit}"

    def save_assets(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_backbone_config(self.backbone, directory)
        self.tokenizer.save_pretrained(str(directory))
