"""TelME encoders on tiny random models: prompt, padding, pooling, registry, offline round trips."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from erckit import plugins, registry
from erckit.data.types import AudioSpec, Sample, Utterance, VideoSpec
from erckit.errors import ErckitError
from erckit.hf import rebuild_from_assets
from erckit_telme.plugin import audio_student, roberta_teacher, visual_student
from erckit_telme.teacher import mask_positions

C = 4
TINY_ROBERTA = dict(model_type="roberta", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=130, vocab_size=261)
TINY_BERT = dict(model_type="bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=128, vocab_size=64)
TINY_AUDIO = dict(model_type="data2vec-audio", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
                  num_conv_pos_embeddings=3, conv_pos_kernel_size=5, num_conv_pos_embedding_groups=2)
TINY_VIDEO = dict(model_type="timesformer", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, image_size=32, patch_size=16)


def sample(texts: list[str], speakers: list[int], **media) -> Sample:
    utterances = tuple(Utterance(speaker=f"p{s}", text=t) for t, s in zip(texts, speakers))
    return Sample("d1", len(texts) - 1, utterances, tuple(speakers), **media)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return roberta_teacher(num_classes=C, config=TINY_ROBERTA, tokenizer="erckit:bytes", embedding_dim=16).eval()


def byte_ids(text: str) -> list[int]:
    return [b + 4 for b in text.encode()]  # erckit:bytes puts byte b at id b + 4


# -- teacher prompt -----------------------------------------------------------------------


def test_prompt_layout_speaker_tokens_and_mask(teacher):
    tok = teacher.tokenizer
    s = sample(["Hi there", "Oh. <mask> <s3>", "Fine"], [1, 2, 1])
    spk = {k: tok.convert_tokens_to_ids(f"<s{k}>") for k in (1, 2)}
    expected = ([spk[1]] + byte_ids(" Hi there") + [spk[2]] + byte_ids(" Oh. <mask> <s3>") + [spk[1]] + byte_ids(" Fine")
                + [tok.sep_token_id] + byte_ids(" Now") + [spk[1]] + byte_ids(" feels") + [tok.mask_token_id])
    assert teacher.prompt_ids(s) == expected  # utterance text never injects special tokens
    assert tok.decode(expected).endswith("</s> Now<s1> feels<mask>")


def test_speakers_past_nine_fold_into_s9(teacher):
    ids = teacher.prompt_ids(sample(["a", "b"], [12, 3]))
    s9 = teacher.tokenizer.convert_tokens_to_ids("<s9>")
    assert ids[0] == s9
    ids = teacher.prompt_ids(sample(["a"], [10]))
    assert ids[-1] == teacher.tokenizer.mask_token_id and ids[-1 - 1 - len(byte_ids(" feels"))] == s9


def test_truncation_keeps_the_prompt_and_the_latest_context():
    t = roberta_teacher(num_classes=C, config=TINY_ROBERTA, tokenizer="erckit:bytes", max_length=40)
    s = sample(["old " * 30, "newest words"], [1, 2])
    ids = t.prompt_ids(s)
    assert len(ids) == 40
    tail = [t.tokenizer.sep_token_id] + byte_ids(" Now") + [t.tokenizer.convert_tokens_to_ids("<s2>")] + byte_ids(" feels") + [t.tokenizer.mask_token_id]
    assert ids[-len(tail):] == tail
    assert ids[: -len(tail)][-len(byte_ids(" newest words")):] == byte_ids(" newest words")
    # the model's own limit applies without max_length: 130 positions - (padding_idx 1 + 1) = 128
    default = roberta_teacher(num_classes=C, config=TINY_ROBERTA, tokenizer="erckit:bytes")
    assert default.limit == 128 and len(default.prompt_ids(sample(["x" * 500], [1]))) == 128
    with pytest.raises(ErckitError, match="no room"):
        roberta_teacher(num_classes=C, config=TINY_ROBERTA, tokenizer="erckit:bytes", max_length=10)


@pytest.mark.parametrize("side", ["right", "left"])
def test_mask_position_and_embedding_independent_of_padding(teacher, side):
    teacher.padding_side = side
    try:
        short, long = sample(["hey"], [1]), sample(["a much longer utterance here", "and more"], [1, 2])
        batch = teacher.collate([teacher.featurize(short), teacher.featurize(long)])
        positions = mask_positions(batch["attention_mask"])
        assert (batch["input_ids"][torch.arange(2), positions] == teacher.tokenizer.mask_token_id).all()
        with torch.no_grad():
            together = teacher(batch).embedding
            alone = teacher(teacher.collate([teacher.featurize(short)])).embedding
        # RoBERTa derives positions from non-pad tokens, so left padding is exact too
        torch.testing.assert_close(together[0], alone[0], rtol=1e-5, atol=1e-5)
    finally:
        teacher.padding_side = "right"


def test_bert_style_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "now", "feels", "hello", "world", "ok"]
    backend = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                            cls_token="[CLS]", mask_token="[MASK]").save_pretrained(tmp_path)
    t = roberta_teacher(num_classes=C, config=TINY_BERT, tokenizer=str(tmp_path), embedding_dim=8)
    ids = t.prompt_ids(sample(["Hello world", "ok"], [1, 2]))
    assert t.tokenizer.convert_ids_to_tokens(ids) == ["<s1>", "hello", "world", "<s2>", "ok", "[SEP]", "now", "<s2>", "feels", "[MASK]"]
    out = t(t.collate([t.featurize(sample(["Hello world"], [1]))]))
    assert out.embedding.shape == (1, 8) and out.logits.shape == (1, C)


# -- audio --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio():
    torch.manual_seed(0)
    return audio_student(num_classes=C, config=TINY_AUDIO, max_seconds=2.0).eval()


def test_audio_pooling_ignores_padding(audio):
    g = torch.Generator().manual_seed(0)
    clips = [sample(["x"], [1], audio=torch.randn(n, generator=g)) for n in (3_000, 16_000, 7_777)]
    features = [audio.featurize(c) for c in clips]
    with torch.no_grad():
        together = audio(audio.collate(features)).embedding
        for row, f in enumerate(features):
            alone = audio(audio.collate([f])).embedding[0]
            torch.testing.assert_close(together[row], alone, rtol=1e-5, atol=1e-5)


def test_audio_featurize_normalises_like_the_feature_extractor(audio):
    from transformers import Wav2Vec2FeatureExtractor

    wave = torch.randn(5_000) * 0.3 + 0.1
    ours = audio.featurize(sample(["x"], [1], audio=wave))["input_values"]
    theirs = Wav2Vec2FeatureExtractor(do_normalize=True)(wave.numpy(), sampling_rate=16_000, return_tensors="pt").input_values[0]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert audio.media == AudioSpec(16_000, 2.0)
    assert audio.featurize(sample(["x"], [1], audio=torch.randn(40_000)))["input_values"].shape[0] == 32_000  # max_seconds
    short = audio.featurize(sample(["x"], [1], audio=torch.zeros(10)))["input_values"]
    assert short.shape[0] == audio.min_samples and torch.isfinite(short).all()


# -- visual -------------------------------------------------------------------------------


def test_visual_frames_resized_normalised_and_pooled():
    torch.manual_seed(0)
    v = visual_student(num_classes=C, config=TINY_VIDEO, frames=2)
    assert v.media == VideoSpec(num_frames=2, size=32)
    assert v.mean.flatten().tolist() == pytest.approx([0.45] * 3) and v.std.flatten().tolist() == pytest.approx([0.225] * 3)
    frames = torch.randint(0, 256, (5, 48, 64, 3), dtype=torch.uint8)
    pixels = v.featurize(sample(["x"], [1], frames=frames))["pixels"]
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == torch.uint8
    gray = torch.full((2, 32, 32, 3), 128, dtype=torch.uint8)  # already at size: passes through untouched
    assert (v.featurize(sample(["x"], [1], frames=gray))["pixels"] == 128).all()
    out = v(v.collate([{"pixels": pixels}, {"pixels": pixels}]))
    assert out.embedding.shape == (2, 32) and out.logits.shape == (2, C)


# -- registry, backward, offline round trips ------------------------------------------------


@pytest.fixture()
def telme_registered(monkeypatch):
    selected = os.environ.get("ERCKIT_PLUGINS", "")
    monkeypatch.setenv("ERCKIT_PLUGINS", f"{selected},telme" if selected else "telme")
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()


def test_every_component_builds_through_the_registry_and_trains(telme_registered):
    from erckit.components import ModalityOutput

    g = torch.Generator().manual_seed(0)
    text = registry.encoders.get("telme.RobertaTeacher.v1")(num_classes=C, config=TINY_ROBERTA, tokenizer="erckit:bytes", embedding_dim=32)
    aud = registry.encoders.get("telme.AudioStudent.v1")(num_classes=C, config=TINY_AUDIO)
    vis = registry.encoders.get("telme.VisualStudent.v1")(num_classes=C, config=TINY_VIDEO, frames=2)
    samples = [sample(["hi", "ho"], [1, 2], audio=torch.randn(n, generator=g),
                      frames=torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8, generator=g)) for n in (4_000, 6_000)]
    outputs = {enc.modality: enc(enc.collate([enc.featurize(s) for s in samples])) for enc in (text, aud, vis)}
    for name in ("telme.ResponseKD.v1", "telme.FeatureKD.v1"):
        loss = registry.distillers.get(name)()(outputs["audio"], outputs["text"].detach())
        loss.backward(retain_graph=True)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in aud.backbone.parameters())
    fuser = registry.fusers.get("telme.ASF.v1")(num_classes=C, dim=32, heads=2, input_dims={"text": 32, "audio": 32, "visual": 32}, anchor="text")
    outputs["visual"] = ModalityOutput(outputs["visual"].embedding, outputs["visual"].logits, torch.tensor([True, False]))
    logits = fuser(outputs["text"], {"audio": outputs["audio"], "visual": outputs["visual"]})
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    assert text.project.weight.grad is not None  # the fuser trains through the teacher embedding
    assert vis.backbone.embeddings.cls_token.grad is not None  # and through the visual CLS state


def test_teacher_loads_a_saved_pretrained_directory_offline(tmp_path):
    from transformers import AutoModel

    from erckit.hf import bytes_tokenizer, build_config

    torch.manual_seed(1)
    hf_model = AutoModel.from_config(build_config(TINY_ROBERTA))
    hf_model.save_pretrained(tmp_path)
    bytes_tokenizer().save_pretrained(tmp_path)
    t = roberta_teacher(num_classes=C, pretrained=str(tmp_path), embedding_dim=16)
    reference = hf_model.encoder.layer[0].attention.self.query.weight
    torch.testing.assert_close(t.backbone.encoder.layer[0].attention.self.query.weight, reference)
    assert len(t.tokenizer) == 261 + 9 and t.backbone.get_input_embeddings().num_embeddings == 270


@pytest.mark.parametrize("which", ["text", "audio", "visual"])
def test_rebuild_from_saved_assets_without_weights_or_hub(tmp_path, which):
    torch.manual_seed(0)
    builders = {
        "text": (roberta_teacher, dict(config=TINY_ROBERTA, tokenizer="erckit:bytes", embedding_dim=16)),
        "audio": (audio_student, dict(config=TINY_AUDIO)),
        "visual": (visual_student, dict(config=TINY_VIDEO, frames=2)),
    }
    factory, args = builders[which]
    original = factory(num_classes=C, **args).eval()
    original.save_assets(tmp_path)
    # config=None: the factory's default `pretrained` hub id would need the network; the saved files win.
    with rebuild_from_assets(tmp_path):
        rebuilt = factory(num_classes=C, **{**args, "config": None})
    rebuilt.load_state_dict(original.state_dict())
    rebuilt.eval()
    s = sample(["hello", "there"], [1, 2], audio=torch.randn(5_000),
               frames=torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8))
    assert rebuilt.fingerprint() == original.fingerprint()
    with rebuild_from_assets(tmp_path / "missing"), pytest.raises(ErckitError, match="incomplete"):
        factory(num_classes=C, **args)
    with torch.no_grad():
        a = original(original.collate([original.featurize(s)]))
        b = rebuilt(rebuilt.collate([rebuilt.featurize(s)]))
    torch.testing.assert_close(a.logits, b.logits)


def test_teacher_config_overrides_reach_its_backbone():
    changed = roberta_teacher(num_classes=C, config=TINY_ROBERTA, tokenizer="erckit:bytes", embedding_dim=16,
                              config_overrides={"hidden_dropout_prob": 0.25})
    assert changed.backbone.config.hidden_dropout_prob == 0.25
    with pytest.raises(ErckitError, match="'hidden_dropout': a 'roberta' config has no such setting"):
        roberta_teacher(num_classes=C, config=TINY_ROBERTA, tokenizer="erckit:bytes", config_overrides={"hidden_dropout": 0.25})
