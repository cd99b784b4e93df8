"""Context building: linear in dialogue length, token ids identical to tokenising every context whole."""

from __future__ import annotations

import json
import os
import tracemalloc
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest

from erckit.data.types import Dialogue, Utterance, make_samples, number_speakers

MELD_REAL = Path(os.environ.get("MELD_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data" / "meld")
if not (MELD_REAL / "dev_sent_emo.csv").is_file():
    MELD_REAL = Path("/work/shared/data/meld")  # a worktree beside the main checkout

TINY_ROBERTA = dict(model_type="roberta", hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=514)
SPEAKERS = ("<s1>", "<s2>", "<s3>", "<s4>", "<s5>", "<s6>", "<s7>", "<s8>", "<s9>")


def synthetic(turns: int, dialogue_id: str = "d", speakers: int = 12) -> Dialogue:
    words = ["well", "no", "<mask>", "I", "really", "think", "so", "</s>", "Oh.", "<s3>", "ok", "yes!"]
    texts = []
    for i in range(turns):
        n = (i * 7) % 11
        texts.append(" ".join(words[(i + k) % len(words)] for k in range(n)) + ("  " if i % 5 == 0 else ""))
    texts[turns // 2] = "long " * 300  # one utterance longer than any budget
    return Dialogue(dialogue_id, tuple(Utterance(f"p{(i * 5) % speakers}", t) for i, t in enumerate(texts)))


def teacher(tokenizer: str, max_length: int | None):
    import torch

    from erckit_telme.plugin import roberta_teacher

    torch.manual_seed(0)
    return roberta_teacher(num_classes=3, tokenizer=tokenizer, config=dict(TINY_ROBERTA, vocab_size=1100),
                           max_length=max_length, embedding_dim=8).eval()


def reference_ids(encoder, dialogue: Dialogue, position: int, max_context: int | None) -> list[int]:
    """The TelME prompt as erckit 0.x built it: tokenise every utterance of the copied context, join, cut."""
    tok = encoder.tokenizer
    first = 0 if max_context is None else max(0, position + 1 - max_context)
    context = dialogue.utterances[first : position + 1]
    speakers = number_speakers([u.speaker for u in dialogue.utterances])[first : position + 1]
    token = {k: tok.convert_tokens_to_ids(SPEAKERS[min(k, 9) - 1]) for k in set(speakers)}
    texts = tok([" " + u.text.strip() for u in context], add_special_tokens=False, split_special_tokens=True)["input_ids"]
    ids: list[int] = []
    for speaker, text_ids in zip(speakers, texts):
        ids += [token[speaker], *text_ids]
    now, feels = tok([" Now", " feels"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
    ids += [tok.sep_token_id, *now, token[speakers[-1]], *feels]
    if encoder.limit is not None:
        ids = ids[-(encoder.limit - 1) :]
    return ids + [tok.mask_token_id]


def assert_same_ids(encoder, dialogues: list[Dialogue], max_context: int | None = None, labels=()) -> int:
    samples = make_samples(dialogues, labels, max_context=max_context)
    by_id = {d.id: d for d in dialogues}
    for sample in samples:
        expected = reference_ids(encoder, by_id[sample.dialogue_id], sample.position, max_context)
        assert encoder.prompt_ids(sample) == expected, sample.key
    return len(samples)


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory) -> Path:
    from tiny_models import byte_bpe_tokenizer

    texts = [u.text for d in [synthetic(200)] for u in d.utterances]
    texts += ["Oh my God, you guys! I can't believe it.", "Well, I don't know... maybe we should go?"] * 5
    return byte_bpe_tokenizer(texts, tmp_path_factory.mktemp("bpe"), vocab_size=600)


# ------------------------------------------------------------------ windows


def test_window_reads_like_the_tuple_it_replaces():
    from erckit.data.types import Window

    items = tuple(range(10))
    window = Window(items, 3, 8)
    assert window == items[3:8] and items[3:8] == window and len(window) == 5
    assert window[0] == 3 and window[-1] == 7 and list(reversed(window)) == [7, 6, 5, 4, 3]
    assert window[1:-1] == (4, 5, 6) and window[::2] == (3, 5, 7) and window[-1:] == (7,)
    assert window[:-1] + (99,) == (3, 4, 5, 6, 99) and hash(window) == hash(items[3:8])
    assert 5 in window and window.index(5) == 2 and window != (3, 4)
    with pytest.raises(IndexError):
        window[5]
    with pytest.raises(ValueError):
        Window(items, 4, 11)


def test_samples_equal_copied_contexts_on_the_demo_data(demo_dir):
    from erckit.data.readers import read_jsonl_dataset

    corpus = read_jsonl_dataset(demo_dir)
    dialogues = [d for split in ("train", "dev", "test") for d in corpus.split(split)] + [synthetic(40)]
    for max_context in (None, 1, 3):
        samples = make_samples(dialogues, corpus.labels, max_context=max_context)
        expected = []
        for dialogue in dialogues:
            numbers = number_speakers([u.speaker for u in dialogue.utterances])
            for position in range(len(dialogue)):
                first = 0 if max_context is None else max(0, position + 1 - max_context)
                expected.append((dialogue.utterances[first : position + 1], numbers[first : position + 1]))
        assert [(tuple(s.context), tuple(s.speaker_ids)) for s in samples] == expected


def test_make_samples_memory_per_utterance_does_not_grow_with_the_dialogue():
    def peak_per_utterance(turns: int) -> float:
        dialogue = Dialogue("d", tuple(Utterance(f"p{i % 3}", "hi") for i in range(turns)))
        tracemalloc.start()
        samples = make_samples([dialogue], [])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(samples) == turns
        return peak / turns

    # A copied context per sample made this quadratic: 4x the turns cost 4x the memory per turn.
    assert peak_per_utterance(4000) < 1.5 * peak_per_utterance(1000)


def test_pickled_samples_grow_linearly_with_the_dialogue():
    """DataLoader workers receive the samples pickled: the dialogue once, not a copy per sample."""
    import pickle

    def bytes_per_utterance(turns: int) -> float:
        samples = make_samples([synthetic(turns)], [])
        copied = pickle.loads(pickle.dumps(samples))
        assert [tuple(s.context) for s in copied] == [tuple(s.context) for s in samples]
        return len(pickle.dumps(samples)) / turns

    assert bytes_per_utterance(800) < 1.5 * bytes_per_utterance(200)


# ------------------------------------------------------------- TelME teacher


@pytest.mark.parametrize("max_length", [None, 24, 64, 128])
def test_teacher_ids_identical_to_whole_context_tokenisation_byte_level_bpe(bpe_dir, max_length):
    encoder = teacher(str(bpe_dir), max_length)
    dialogues = [synthetic(80, "a"), synthetic(9, "b", speakers=2), Dialogue("c", (Utterance("x", ""),))]
    for max_context in (None, 4):
        assert assert_same_ids(encoder, dialogues, max_context) == 90


def test_teacher_ids_identical_on_the_demo_data(demo_dir):
    from erckit.data.readers import read_jsonl_dataset

    encoder = teacher(str(demo_dir / "tokenizer"), 40)
    corpus = read_jsonl_dataset(demo_dir)
    assert assert_same_ids(encoder, corpus.split("train") + corpus.split("dev"), labels=corpus.labels) > 20


@pytest.mark.skipif(not (MELD_REAL / "dev_sent_emo.csv").is_file(), reason="MELD CSVs not available")
@pytest.mark.parametrize("max_length", [128, 512])
def test_teacher_ids_identical_on_all_of_meld_dev(tmp_path, max_length):
    """Every MELD dev utterance, with a RoBERTa-style byte-level BPE fit to MELD train."""
    from erckit.data.readers import read_meld
    from tiny_models import byte_bpe_tokenizer

    corpus = read_meld(MELD_REAL)
    byte_bpe_tokenizer([u.text for d in corpus.split("train") for u in d.utterances], tmp_path, vocab_size=1000)
    encoder = teacher(str(tmp_path), max_length)
    assert encoder.tokenizer.convert_ids_to_tokens(encoder.tokenizer(" you")["input_ids"][1:-1]) == ["Ġyou"]
    assert assert_same_ids(encoder, corpus.split("dev"), labels=corpus.labels) == 1109


class CountingTokenizer:
    """Forwards to a tokenizer, counting the texts it is asked to tokenise."""

    def __init__(self, tokenizer):
        self.tokenizer, self.texts = tokenizer, 0

    def __call__(self, texts, **kwargs):
        self.texts += 1 if isinstance(texts, str) else len(texts)
        return self.tokenizer(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def test_teacher_tokenises_each_utterance_once(bpe_dir):
    encoder = teacher(str(bpe_dir), 64)
    dialogue = synthetic(400)
    counting = CountingTokenizer(encoder.tokenizer)
    encoder.tokenizer = counting
    for sample in make_samples([dialogue], []):
        encoder.featurize(sample)
    distinct = len({u.text for u in dialogue.utterances})
    assert counting.texts <= distinct  # copying and re-tokenising each context: 80,200 texts


class Tripwire(Sequence):
    """A context whose utterances before ``allowed_from`` must never be read."""

    def __init__(self, items, allowed_from: int):
        self.items, self.allowed_from = tuple(items), allowed_from

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            raise AssertionError("the context was copied")
        index = index + len(self.items) if index < 0 else index
        assert index >= self.allowed_from, f"utterance {index} read, outside the token budget"
        return self.items[index]


def test_teacher_reads_only_the_utterances_that_fill_its_budget(bpe_dir):
    from erckit.data.types import Sample

    encoder = teacher(str(bpe_dir), 48)
    dialogue = synthetic(5000)
    last = len(dialogue) - 1
    speakers = number_speakers([u.speaker for u in dialogue.utterances])
    # Every utterance brings at least its speaker token: no more than 48 of them can matter.
    sample = Sample("d", last, Tripwire(dialogue.utterances, len(dialogue) - 48), Tripwire(speakers, len(dialogue) - 48))
    assert encoder.prompt_ids(sample) == reference_ids(encoder, dialogue, last, None)
    assert encoder.context_window() <= 48  # what a live stream keeps per dialogue


def test_piece_cache_is_bounded_and_keeps_enough_of_long_pieces():
    from erckit.data.context import PieceCache

    calls = []
    cache = PieceCache(lambda key: calls.append(key) or list(range(key)), keep=5, capacity=3)
    assert cache(3) == (0, 1, 2) and cache(3) == (0, 1, 2) and calls == [3]
    assert cache(100) == (94, 95, 96, 97, 98, 99)  # the last keep + 1: still "longer than the budget"
    for key in (1, 2, 4):
        cache(key)
    assert len(cache) == 3


# --------------------------------------------------------- truncation report


def test_truncations_counted_once_per_sample_with_the_limit(bpe_dir):
    from erckit.data.context import count_truncations

    encoder = teacher(str(bpe_dir), 64)
    long = Dialogue("long", (Utterance("a", "short one"), Utterance("b", "word " * 5000), Utterance("a", "ok")))
    samples = make_samples([long, Dialogue("tiny", (Utterance("a", "hi"),))], [])
    with count_truncations() as tally:
        for _ in range(2):  # a second stage featurising the same samples counts nothing new
            for sample in samples:
                encoder.featurize(sample)
    (message,) = tally.messages()
    assert "2 of 4 contexts" in message and "64-token limit" in message
    assert "in 1 of them the target utterance itself was cut" in message


def test_predict_warns_once_per_run_with_the_count(bpe_dir):
    from erckit.model import ERCModel
    from erckit.predict import predict
    from erckit.recipe.load import validate

    raw = {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {"encoders": {"text": {"factory": "telme.RobertaTeacher.v1", "tokenizer": str(bpe_dir), "max_length": 32,
                                        "embedding_dim": 8, "config": dict(TINY_ROBERTA, vocab_size=1100)}}},
        "stages": [{"kind": "supervised", "encoders": ["text"]}],
    }
    model = ERCModel.from_recipe(validate(raw, "test"), ["a", "b"]).eval()
    dialogues = [Dialogue("d", (Utterance("a", "word " * 5000), Utterance("b", "hi"))), Dialogue("e", (Utterance("a", "hi"),))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict(model, dialogues, batch_size=1)
    messages = [str(w.message) for w in caught if "contexts were longer" in str(w.message)]
    assert messages == [
        "telme.RobertaTeacher: 2 of 3 contexts were longer than its 32-token limit and lost their oldest tokens; "
        "in 1 of them the target utterance itself was cut to the limit (raise max_length to keep more, if the model allows)"
    ]
    from erckit.evaluate import evaluate

    labelled = [Dialogue(d.id, tuple(Utterance(u.speaker, u.text, "a") for u in d.utterances)) for d in dialogues]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert evaluate(model, labelled).total == 3
    assert [str(w.message) for w in caught if "contexts were longer" in str(w.message)] == messages

    from erckit.predict import predict_stream

    lines = [json.dumps({"dialogue": "d", "speaker": u.speaker, "text": u.text}) for u in dialogues[0].utterances]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(list(predict_stream(model, lines))) == 2
    assert [str(w.message)[:60] for w in caught if "contexts were longer" in str(w.message)] == [messages[0].replace("2 of 3", "2 of 2")[:60]]
