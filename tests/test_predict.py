"""erckit.predict: batched prediction, streaming, missing media, odd inputs, safe model loading."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import torch

from erckit.data.types import Dialogue, Utterance
from erckit.errors import DataError, MediaError, ModelLoadError, UsageError
from erckit.model import ERCModel
from erckit.predict import DialoguePrediction, predict, predict_stream
from tiny_models import LABELS, build_model, multimodal_recipe, save_model, text_recipe, write_wav


def dialogue(id: str, turns: list[tuple[str, str, str | None]]) -> Dialogue:
    return Dialogue(id, tuple(Utterance(speaker=s, text=t, label=l) for s, t, l in turns))


DIALOGUES = [
    dialogue("short", [("Ross", "hi", "joy")]),
    dialogue("long", [("Ross", "we were on a break", "anger"), ("Rachel", "no we were not", "anger"),
                      ("Ross", "okay fine", "neutral"), ("Joey", "how you doin", None)]),
    dialogue("mid", [("A", "what a lovely day", "joy"), ("B", "is it though", "neutral")]),
]


@pytest.fixture(scope="module")
def model() -> ERCModel:
    return build_model(text_recipe())


def probabilities(results: list[DialoguePrediction]) -> torch.Tensor:
    return torch.tensor([[p.probabilities[l] for l in LABELS] for d in results for p in d.utterances])


def test_every_utterance_gets_a_label_and_all_probabilities(model: ERCModel) -> None:
    results = model.predict(DIALOGUES)
    assert [d.id for d in results] == ["short", "long", "mid"]
    for result, source in zip(results, DIALOGUES):
        assert [p.position for p in result.utterances] == list(range(len(source)))
        for p, utterance in zip(result.utterances, source.utterances):
            assert (p.speaker, p.text, p.gold) == (utterance.speaker, utterance.text, utterance.label)
            assert list(p.probabilities) == LABELS
            assert math.isclose(sum(p.probabilities.values()), 1.0, rel_tol=1e-5)
            assert p.label == max(p.probabilities, key=p.probabilities.get)
            assert p.modalities_used == ["text"] and p.missing == []


def test_batching_across_dialogues_does_not_change_results(model: ERCModel) -> None:
    together = probabilities(predict(model, DIALOGUES, batch_size=2))
    alone = probabilities([r for d in DIALOGUES for r in predict(model, [d], batch_size=1)])
    torch.testing.assert_close(together, alone)


def test_padding_bounded_batches_give_the_same_numbers() -> None:
    """A server cuts its micro-batches where padding would dominate: the numbers must not move."""
    from erckit.predict import Predictor, predict_with
    from tiny_models import teacher_recipe

    teacher = build_model(teacher_recipe())
    sorted_batches = probabilities(predict(teacher, DIALOGUES, batch_size=32))
    split = probabilities(predict_with(Predictor(teacher, batch_size=32, padding_slack=1.0), DIALOGUES))
    torch.testing.assert_close(split, sorted_batches, atol=1e-6, rtol=0)
    with pytest.raises(UsageError, match="padding slack"):
        Predictor(teacher, padding_slack=0.5)


def test_context_is_causal(model: ERCModel) -> None:
    full = predict(model, [DIALOGUES[1]])[0]
    prefix = predict(model, [Dialogue("long", DIALOGUES[1].utterances[:2])])[0]
    for a, b in zip(full.utterances[:2], prefix.utterances):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


def test_a_dialogues_own_speaker_numbers_reach_the_samples(model: ERCModel, monkeypatch) -> None:
    """Prediction strips gold labels from a copy of each dialogue; the copy keeps its speaker numbering."""
    from erckit.predict import Predictor

    seen: list[tuple[int, ...]] = []
    run = Predictor.run

    def recording(self, samples):
        seen.extend(tuple(s.speaker_ids) for s in samples)
        return run(self, samples)

    monkeypatch.setattr(Predictor, "run", recording)
    numbered = Dialogue("n", DIALOGUES[1].utterances[:3], speaker_numbers=(4, 1, 2))
    model.predict([numbered])
    assert seen == [(4,), (4, 1), (4, 1, 2)]


def test_unknown_gold_labels_unseen_speakers_and_empty_text(model: ERCModel) -> None:
    odd = dialogue("odd", [("Gunther", "", "schadenfreude"), ("Someone new", "   ", None), ("Gunther", "!!!", "joy")])
    result = model.predict([odd])[0]
    assert [p.gold for p in result.utterances] == ["schadenfreude", None, "joy"]
    assert all(p.label in LABELS for p in result.utterances)


def test_a_300_utterance_dialogue() -> None:
    # Context-free bag of words: the context-counting one spends seconds re-counting 300 turns in Python.
    model = build_model(text_recipe(context=False))
    turns = [(f"speaker {i % 7}", f"utterance number {i} says something", None) for i in range(300)]
    result = model.predict([dialogue("marathon", turns)], batch_size=64)[0]
    assert len(result.utterances) == 300
    assert all(math.isfinite(v) for p in result.utterances for v in p.probabilities.values())


def test_a_300_utterance_dialogue_through_a_context_teacher() -> None:
    """A real (tiny, random) TelME teacher reads the whole causal context: it must truncate, not crash."""
    recipe = {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {"encoders": {"text": {
            "factory": "telme.RobertaTeacher.v1", "tokenizer": "erckit:bytes", "max_length": 96, "embedding_dim": 32,
            "config": {"model_type": "roberta", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 64, "max_position_embeddings": 130, "vocab_size": 270},
        }}},
        "stages": [{"kind": "supervised", "encoders": ["text"]}],
    }
    model = build_model(recipe)
    turns = [(f"speaker {i % 12}", f"utterance number {i} says something", None) for i in range(300)]
    result = model.predict([dialogue("marathon", turns)], batch_size=64)[0]
    assert len(result.utterances) == 300
    assert all(math.isfinite(v) for p in result.utterances for v in p.probabilities.values())


def test_empty_input_and_bf16(model: ERCModel) -> None:
    assert model.predict([]) == []
    fp32 = probabilities(model.predict(DIALOGUES))
    bf16 = probabilities(model.predict(DIALOGUES, precision="bf16"))
    torch.testing.assert_close(bf16, fp32, atol=0.03, rtol=0)


def test_bad_options_are_usage_errors(model: ERCModel) -> None:
    with pytest.raises(UsageError, match="precision"):
        model.predict(DIALOGUES, precision="fp8")
    with pytest.raises(UsageError, match="skip"):
        model.predict(DIALOGUES, media_policy="skip")


def test_saved_model_predicts_the_same(model: ERCModel, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path / "m")
    loaded = ERCModel.from_pretrained(tmp_path / "m")
    torch.testing.assert_close(probabilities(loaded.predict(DIALOGUES)), probabilities(model.predict(DIALOGUES)))


# ------------------------------------------------------------------ media


@pytest.fixture(scope="module")
def multimodal() -> ERCModel:
    return build_model(multimodal_recipe())


def test_missing_audio_goes_through_the_missing_modality_path(multimodal: ERCModel, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav")
    d = Dialogue("mm", (
        Utterance("A", "hello there", "joy", audio=wav),
        Utterance("B", "no audio for me", "neutral"),
        Utterance("A", "broken audio", None, audio=tmp_path / "gone.wav"),
    ))
    result = multimodal.predict([d])[0].utterances
    assert result[0].modalities_used == ["text", "audio"] and result[0].missing == []
    assert result[1].modalities_used == ["text"] and result[1].missing == ["audio"]
    assert result[2].missing == ["audio"]
    for p in result:
        assert math.isclose(sum(p.probabilities.values()), 1.0, rel_tol=1e-5)
    # The absent modality really changes the input: audio present vs absent on the same text differs.
    silent = multimodal.predict([Dialogue("mm", (Utterance("A", "hello there"),))])[0].utterances[0]
    assert silent.probabilities != pytest.approx(result[0].probabilities, abs=1e-6)
    with pytest.raises(MediaError):
        multimodal.predict([d], media_policy="error")


def test_multimodal_model_round_trip(multimodal: ERCModel, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", tone=220.0)
    d = [Dialogue("mm", (Utterance("A", "hello", audio=wav), Utterance("B", "bye")))]
    multimodal.save_pretrained(tmp_path / "m")
    loaded = ERCModel.from_pretrained(tmp_path / "m")
    torch.testing.assert_close(probabilities(loaded.predict(d)), probabilities(multimodal.predict(d)))


# -------------------------------------------------------------- streaming


def stream_lines(dialogues: list[Dialogue]) -> list[str]:
    """The dialogues' utterances as stream lines, interleaved round-robin across dialogues."""
    lines = []
    for position in range(max(len(d) for d in dialogues)):
        for d in dialogues:
            if position < len(d):
                u = d.utterances[position]
                record = {"dialogue": d.id, "speaker": u.speaker, "text": u.text}
                if u.label is not None:
                    record["label"] = u.label
                lines.append(json.dumps(record) + "\n")
    return lines


@pytest.mark.parametrize("max_context", [None, 2])
def test_stream_matches_batch_prediction(model: ERCModel, max_context: int | None) -> None:
    batch = {(p.dialogue_id, p.position): p for d in model.predict(DIALOGUES, max_context=max_context) for p in d.utterances}
    streamed = list(predict_stream(model, stream_lines(DIALOGUES), max_context=max_context))
    assert len(streamed) == len(batch)
    for p in streamed:
        expected = batch[(p.dialogue_id, p.position)]
        assert (p.speaker, p.text, p.gold, p.label) == (expected.speaker, expected.text, expected.gold, expected.label)
        assert p.probabilities == pytest.approx(expected.probabilities, abs=1e-6)


def test_stream_yields_before_reading_the_next_line(model: ERCModel) -> None:
    consumed: list[str] = []

    def lines():
        for line in stream_lines(DIALOGUES[1:2]):
            consumed.append(line)
            yield line

    stream = predict_stream(model, lines())
    first = next(stream)
    assert first.position == 0 and len(consumed) == 1


def test_stream_errors_name_the_line(model: ERCModel) -> None:
    lines = ['{"dialogue": "d", "speaker": "A", "text": "hi"}\n', "\n", "{oops\n",
             '{"dialogue": "d", "speaker": "B"}\n', '{"dialogue": "d", "speaker": "B", "text": "yo", "mood": 1}\n',
             '{"dialogue": "d", "speaker": "B", "text": "ok"}\n']
    with pytest.raises(DataError, match=r"<stdin>:3: invalid JSON"):
        list(predict_stream(model, lines))
    errors: list[str] = []
    results = list(predict_stream(model, lines, on_error=lambda e: errors.append(str(e))))
    assert [p.text for p in results] == ["hi", "ok"]
    assert [p.position for p in results] == [0, 1]  # skipped lines do not enter the history
    assert [e.split(":")[1] for e in errors] == ["3", "4", "5"]
    assert "'text' must be a string" in errors[1] and "mood" in errors[2]


# ------------------------------------------------------- safe model loading


def test_model_dir_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        ERCModel.from_pretrained(tmp_path / "nowhere")


def test_model_dir_without_config(tmp_path: Path) -> None:
    directory = save_model(tmp_path / "m")
    (directory / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="config.json"):
        ERCModel.from_pretrained(directory)


def test_model_dir_without_weights(tmp_path: Path) -> None:
    directory = save_model(tmp_path / "m")
    (directory / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        ERCModel.from_pretrained(directory)


def test_weights_with_a_mismatching_shape(tmp_path: Path) -> None:
    directory = save_model(tmp_path / "m")
    config = json.loads((directory / "config.json").read_text())
    config["encoders"]["text"]["buckets"] = 32  # weights were saved for 64
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        ERCModel.from_pretrained(directory)


class _Payload:
    marker: str = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickled_weights_are_never_executed(tmp_path: Path) -> None:
    directory = save_model(tmp_path / "m")
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = str(marker)
    (directory / "model.safetensors").write_bytes(pickle.dumps(payload))
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        ERCModel.from_pretrained(directory)
    assert not marker.exists()


def test_run_directory_is_accepted(tmp_path: Path) -> None:
    save_model(tmp_path / "run" / "model")
    assert ERCModel.from_pretrained(tmp_path / "run").labels == LABELS


@pytest.mark.parametrize("span", ['"start": NaN', '"end": Infinity', '"start": -1'])
def test_stream_times_must_be_finite_seconds(model: ERCModel, span: str) -> None:
    line = '{"dialogue": "d", "speaker": "A", "text": "hi", ' + span + '}'
    with pytest.raises(DataError, match=r"<stdin>:1: '(start|end)' must be a finite, non-negative number of seconds"):
        list(predict_stream(model, [line]))


def test_a_long_live_stream_keeps_only_what_the_teacher_can_read() -> None:
    """The stream keeps per dialogue only the utterances the encoders read, and answers as the batch does."""
    from erckit.predict import ConversationState, Predictor

    recipe = {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {"encoders": {"text": {
            "factory": "telme.RobertaTeacher.v1", "tokenizer": "erckit:bytes", "max_length": 32, "embedding_dim": 8,
            "config": {"model_type": "roberta", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 32, "max_position_embeddings": 66, "vocab_size": 270},
        }}},
        "stages": [{"kind": "supervised", "encoders": ["text"]}],
    }
    model = build_model(recipe)
    turns = [(f"s{i % 4}", "ok" if i % 3 else f"turn {i}", None) for i in range(50)]
    long = dialogue("long", turns)
    batch = model.predict([long])[0].utterances
    streamed = list(predict_stream(model, stream_lines([long])))
    assert [p.probabilities for p in streamed] == [pytest.approx(p.probabilities, abs=1e-6) for p in batch]

    state = ConversationState(Predictor(model).context_window)
    for i in range(20_000):
        sample = state.add("d", Utterance(f"s{i % 4}", "x"))
    utterances, numbers = state.history["d"]
    assert len(utterances) < 2 * 32 and len(numbers) == len(utterances)  # not 20,000
    assert sample.position == 19_999 and sample.speaker_ids[-1] == 4
