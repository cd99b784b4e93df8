"""telme.RobertaTeacher.v1 with preprocessing="authors": the ids TelME's authors trained on, and their forward.

The reference is written out here from the authors' MELD/utils.py (make_batchs,
encode_right_truncated, padding), MELD/model.py (Teacher_model) and transformers
4.27.2's slow tokenizer (PreTrainedTokenizer.tokenize: trie split and stripping around
special tokens; RobertaTokenizer: GPT-2 regex, byte table, BPE by merge rank), reading
vocab.json and merges.txt itself: nothing here calls erckit's splitting or the
tokenizers library's BPE. bench/telme_tokens.py runs the real 4.27.2 on MELD.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import regex
import torch
from torch import nn

from erckit.data.types import Sample, Utterance
from erckit_telme.plugin import roberta_teacher

C = 5
SPEAKERS = [f"<s{k}>" for k in range(1, 10)]
CORPUS = [
    "Hi you", "Hi you there", "Now feels", "feels like rain", "ok ok", "Oh my God, he's lost it.",
    "What? No way!", "Now Hi you feels", "you feels ok", "so Now you feels", "ok Now Hi", "I'm fine, thanks... really.", "café naïve 1999",
] * 5


# -- a tiny RoBERTa-style tokenizer, as files ------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """vocab.json + merges.txt (byte-level BPE, RoBERTa's special tokens) trained on CORPUS."""
    from tiny_models import roberta_tokenizer_files

    return roberta_tokenizer_files(CORPUS, tmp_path_factory.mktemp("roberta_files"), vocab_size=400)


@pytest.fixture(scope="module")
def reference(tokenizer_dir):
    return Authors427(tokenizer_dir)


def tiny_config(vocabulary: int) -> dict:
    return dict(model_type="roberta", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=514, vocab_size=vocabulary)


@pytest.fixture(scope="module")
def teacher(tokenizer_dir, reference):
    torch.manual_seed(0)
    return roberta_teacher(num_classes=C, config=tiny_config(reference.size), tokenizer=str(tokenizer_dir),
                           embedding_dim=16, preprocessing="authors").eval()


# -- the authors' pipeline under transformers 4.27.2, written out --------------------------


def gpt2_byte_table() -> dict[int, str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


class Authors427:
    """RobertaTokenizer.from_pretrained + add_special_tokens(additional_special_tokens=<s1>..<s9>) of 4.27.2."""

    words = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

    def __init__(self, directory: Path):
        self.vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        lines = (directory / "merges.txt").read_text(encoding="utf-8").split("\n")[1:-1]
        self.ranks = {tuple(line.split()): rank for rank, line in enumerate(lines)}
        for offset, token in enumerate(SPEAKERS):  # added in list order after the vocabulary
            self.vocab[token] = len(self.vocab)
        self.size = len(self.vocab)
        self.bytes = gpt2_byte_table()
        # RoBERTa's own tokens are AddedTokens: <mask> has lstrip, the others strip nothing; the
        # speaker tokens were added as plain strings, which 4.27 strips on both sides.
        self.no_split = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", *SPEAKERS]
        self.added = {"<s>": (False, False), "<pad>": (False, False), "</s>": (False, False),
                      "<unk>": (False, False), "<mask>": (True, False)}

    def trie_split(self, text: str) -> list[str]:
        pieces, start, i = [], 0, 0
        while i < len(text):
            found = [t for t in self.no_split if text.startswith(t, i)]
            if found:
                token = max(found, key=len)
                if i > start:
                    pieces.append(text[start:i])
                pieces.append(token)
                i = start = i + len(token)
            else:
                i += 1
        if start < len(text):
            pieces.append(text[start:])
        return pieces

    def bpe(self, word: str) -> list[str]:
        symbols = list(word)
        while len(symbols) > 1:
            pairs = list(zip(symbols, symbols[1:]))
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def tokenize(self, text: str) -> list[str]:
        tokens = self.trie_split(text)
        for i, token in enumerate(tokens):
            if token not in self.no_split:
                continue
            left = tokens[i - 1] if i > 0 else None
            right = tokens[i + 1] if i < len(tokens) - 1 else None
            lstrip, rstrip = self.added.get(token, (True, True))
            if rstrip and right:
                tokens[i + 1] = right.lstrip()
            if lstrip and left:
                tokens[i - 1] = left.rstrip()
        out = []
        for token in tokens:
            if not token:
                continue
            if token in self.no_split:
                out.append(token)
            else:
                for word in self.words.findall(token):
                    out.extend(self.bpe("".join(self.bytes[b] for b in word.encode("utf-8"))))
        return out

    def make_batchs_string(self, texts: list[str], numbers: list[int]) -> str:
        joined = ""
        for text, number in zip(texts, numbers):
            joined += "<s" + str(number) + "> " + text + " "
        return joined.strip() + " </s> " + "Now <s" + str(numbers[-1]) + "> feels"

    def ids(self, texts: list[str], numbers: list[int]) -> list[int]:
        tokens = self.tokenize(self.make_batchs_string(texts, numbers))[-511:]
        return [self.vocab.get(t, self.vocab["<unk>"]) for t in tokens] + [self.vocab["<mask>"]]

    def tokens(self, texts: list[str], numbers: list[int]) -> list[str]:
        return self.tokenize(self.make_batchs_string(texts, numbers)) + ["<mask>"]


def padding(ids_list: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """utils.padding: on the left."""
    longest = max(len(ids) for ids in ids_list)
    ids = [[pad_id] * (longest - len(x)) + x for x in ids_list]
    masks = [[0] * (longest - len(x)) + [1] * len(x) for x in ids_list]
    return torch.tensor(ids), torch.tensor(masks)


class TeacherModel(nn.Module):
    """model.Teacher_model: text_model, W, classifier; the last position's state."""

    def __init__(self, config):
        super().__init__()
        from transformers import RobertaModel

        self.text_model = RobertaModel(config)
        self.W = nn.Linear(config.hidden_size, 16)
        self.classifier = nn.Linear(16, C)

    def forward(self, tokens, masks):
        last = self.text_model(input_ids=tokens, attention_mask=masks).last_hidden_state[:, -1, :]
        hidden = self.W(last)
        return hidden, self.classifier(hidden)


# -- helpers ---------------------------------------------------------------------------------


def sample(texts: list[str], numbers: list[int]) -> Sample:
    utterances = tuple(Utterance(speaker=f"p{k}", text=t) for t, k in zip(texts, numbers))
    return Sample("d", len(texts) - 1, utterances, tuple(numbers))


CASES = {
    "issue example": (["Hi you", "ok"], [1, 2]),
    "spaces at both ends": (["  Hi you  ", " ok", "feels   "], [1, 2, 1]),
    "inner spaces and other whitespace": (["Hi   you", "\tok\n", "\u00a0Now\u2009feels "], [2, 1, 2]),
    "empty texts": (["", "Hi", "", "  "], [1, 2, 3, 1]),
    "speakers past nine": (["Hi", "you", "ok", "feels", "Now"], [9, 10, 11, 2, 12]),
    "first and target past nine": (["Hi you", "", "ok "], [10, 10, 13]),
    "literal special tokens": (["Hi <s3> you", "x <mask> y", "a </s> b <pad>", "<s>ok<unk>", "<s12> hi <s9>"], [1, 2, 3, 1, 2]),
    "only special tokens": (["<mask>", "<s3>", "</s>"], [4, 10, 5]),
}


# -- token ids ---------------------------------------------------------------------------------


def test_pieces_of_the_issue_example(teacher, reference, tokenizer_dir):
    """The authors' space markers, against erckit's own prompt on the same tokenizer."""
    s = sample(["Hi you", "ok"], [1, 2])
    authors = teacher.tokenizer.convert_ids_to_tokens(teacher.prompt_ids(s))
    assert authors == reference.tokens(["Hi you", "ok"], [1, 2])
    ok = reference.tokenize("ok ")  # the last utterance keeps one space before </s>
    assert authors == ["<s1>", "Hi", "Ġyou", "<s2>", *ok, "</s>", "ĠNow", "<s2>", "feels", "<mask>"] and ok[-1] == "Ġ"
    ours = roberta_teacher(num_classes=C, config=tiny_config(reference.size), tokenizer=str(tokenizer_dir))
    assert ours.preprocessing == "erckit" and ours.padding_side == "right"
    erckit = ours.tokenizer.convert_ids_to_tokens(ours.prompt_ids(s))
    assert erckit == ["<s1>", "ĠHi", "Ġyou", "<s2>", *reference.tokenize(" ok"), "</s>", "ĠNow", "<s2>", "Ġfeels", "<mask>"]


@pytest.mark.parametrize("case", CASES)
def test_ids_match_the_authors_pipeline(teacher, reference, case):
    texts, numbers = CASES[case]
    for end in range(1, len(texts) + 1):  # every prefix is one of the authors' samples
        assert teacher.prompt_ids(sample(texts[:end], numbers[:end])) == reference.ids(texts[:end], numbers[:end]), end


def test_literal_tokens_are_special_and_numbers_past_nine_are_text(teacher, reference):
    texts, numbers = CASES["literal special tokens"]
    tokens = teacher.tokenizer.convert_ids_to_tokens(teacher.prompt_ids(sample(texts, numbers)))
    # <s3>: the third speaker's and the one in the first text; <mask>, </s>: the text's and the prompt's.
    assert tokens.count("<s3>") == 2 and tokens.count("<mask>") == 2 and tokens.count("</s>") == 2
    assert "<pad>" in tokens and "<unk>" in tokens and "<s>" in tokens
    tokens = teacher.tokenizer.convert_ids_to_tokens(teacher.prompt_ids(sample(["Hi", "ok"], [10, 12])))
    assert not any(t in SPEAKERS for t in tokens) and "".join(tokens).count("12") == 2


def test_the_511_token_cut(teacher, reference):
    long = "Hi you there, ok? " * 40
    texts, numbers = ["first words", long, "ok", long, "Now what"], [1, 2, 3, 11, 2]
    ids = teacher.prompt_ids(sample(texts, numbers))
    assert len(ids) == 512 and ids == reference.ids(texts, numbers)
    assert len(reference.tokenize(reference.make_batchs_string(texts, numbers))) > 511
    # One utterance longer than the whole budget: only its tail survives, then the prompt.
    ids = teacher.prompt_ids(sample([long * 3], [3]))
    assert len(ids) == 512 and ids == reference.ids([long * 3], [3])


def test_random_dialogues(teacher, reference):
    rng = random.Random(7)
    fragments = ["Hi", "you", " ", "  ", "ok", "<s3>", "<mask>", "</s>", "feels", "Now", "café", "!", "\t", "<s10>", "'s", "99"]
    for _ in range(40):
        turns = rng.randint(1, 12)
        texts = ["".join(rng.choice(fragments) for _ in range(rng.randint(0, 6))) for _ in range(turns)]
        numbers = [rng.randint(1, 13) for _ in range(turns)]
        assert teacher.prompt_ids(sample(texts, numbers)) == reference.ids(texts, numbers), (texts, numbers)


class Recording(Sequence):
    """A dialogue context that remembers which utterances were read."""

    def __init__(self, items):
        self.items, self.read = items, set()

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        self.read.add(index)
        return self.items[index]


def test_cost_per_sample_is_bounded_by_the_budget(tokenizer_dir, reference):
    t = roberta_teacher(num_classes=C, config=tiny_config(reference.size), tokenizer=str(tokenizer_dir),
                        max_length=64, preprocessing="authors")
    turns = 2_000
    texts, numbers = [f"ok {i}" for i in range(turns)], [1 + i % 12 for i in range(turns)]
    context = Recording(tuple(Utterance(speaker="x", text=text) for text in texts))
    ids = t.prompt_ids(Sample("d", turns - 1, context, tuple(numbers)))
    assert len(context.read) <= 63 and min(context.read) > turns - 64
    assert ids == reference.ids(texts, numbers)[:-1][-63:] + [reference.vocab["<mask>"]]  # 4.27 cut at limit - 1


def test_mode_is_part_of_the_cache_key_and_is_validated(teacher, tokenizer_dir, reference):
    from erckit.errors import ErckitError

    ours = roberta_teacher(num_classes=C, config=tiny_config(reference.size), tokenizer=str(tokenizer_dir))
    assert "preprocessing=authors" in teacher.fingerprint() and "preprocessing=erckit" in ours.fingerprint()
    with pytest.raises(ErckitError, match="'erckit' or 'authors'"):
        roberta_teacher(num_classes=C, config=tiny_config(reference.size), tokenizer=str(tokenizer_dir),
                        preprocessing="4.27")


def test_saved_model_keeps_the_authors_preprocessing(tmp_path, tokenizer_dir, reference):
    from erckit.model import ERCModel
    from erckit.recipe.load import validate

    raw = {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {"encoders": {"text": {"factory": "telme.RobertaTeacher.v1", "tokenizer": str(tokenizer_dir),
                                        "embedding_dim": 16, "preprocessing": "authors",
                                        "config": tiny_config(reference.size)}}},
        "stages": [{"kind": "supervised", "encoders": ["text"]}],
    }
    torch.manual_seed(0)
    ERCModel.from_recipe(validate(raw, "test"), ["a", "b", "c"]).save_pretrained(tmp_path / "model")
    loaded = ERCModel.from_pretrained(tmp_path / "model")
    text = loaded.encoders["text"]
    texts, numbers = CASES["literal special tokens"]
    assert text.preprocessing == "authors" and text.padding_side == "left"
    assert text.prompt_ids(sample(texts, numbers)) == reference.ids(texts, numbers)


# -- forward -----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 4])
def test_logits_match_the_authors_teacher_forward(teacher, reference, batch_size):
    dialogues = [CASES["issue example"], CASES["literal special tokens"], CASES["speakers past nine"],
                 (["Hi you there, ok? " * 60, "Now"], [1, 2]), CASES["empty texts"], (["ok"], [3]),
                 CASES["spaces at both ends"], CASES["first and target past nine"]]
    # The authors' layout: text_model / W / classifier (what the importer maps onto backbone / project / classifier).
    authors = TeacherModel(teacher.backbone.config).eval()
    state = {f"text_model.{k}": v for k, v in teacher.backbone.state_dict().items()}
    state.update({f"W.{k}": v for k, v in teacher.project.state_dict().items()})
    state.update({f"classifier.{k}": v for k, v in teacher.classifier.state_dict().items()})
    missing, unexpected = authors.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("text_model.pooler.") for k in missing)  # their pooler is never read

    pad = reference.vocab["<pad>"]
    with torch.no_grad():
        alone = torch.cat([authors(*padding([reference.ids(*d)], pad))[1] for d in dialogues])
        for start in range(0, len(dialogues), batch_size):
            chunk = dialogues[start : start + batch_size]
            batch = teacher.collate([teacher.featurize(sample(*d)) for d in chunk])
            tokens, masks = padding([reference.ids(*d) for d in chunk], pad)
            assert torch.equal(batch["input_ids"], tokens) and torch.equal(batch["attention_mask"], masks)
            ours = teacher(batch).logits
            theirs = authors(tokens, masks)[1]
            assert (ours - alone[start : start + len(chunk)]).abs().max() <= 1e-5
            assert (ours - theirs).abs().max() <= 1e-5
