"""erckit import-telme: the authors' released TelME weights become an erckit model that computes what theirs did.

Tiny authors-layout checkpoints are built here: tiny random RoBERTa (with their 9 speaker
tokens added and the embeddings resized, a tokenizer trained locally), data2vec-audio and
TimeSformer backbones saved as local folders, wrapped in a transcription of the authors'
modules (MELD/model.py: Teacher_model, Student_Audio, Student_Video; ASF from
test_telme_asf.py), and torch.save'd as their state dicts under their save_model/ paths.
The imported directory is loaded like any model and its teacher, student and fused logits
compared with those modules' forward on the same prepared tensors: per sample at batch 1
(the authors' ASF mixes a larger batch), erckit at batches of 1 and 4.

The backbones are tiny (32-d); the teacher embedding and the fusion's text width stay the
authors' 768, so their ASF here has a 64-d [audio; video] token; IEMOCAP's 4 heads divide it,
MELD's 3 do not (``--set fuser.heads=2``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch import nn

from erckit.errors import ErckitError
from erckit.model import ERCModel
from erckit_telme.authors import CHECKPOINTS, LABELS, authors_model
from erckit_telme.importer import import_telme
from test_telme_asf import AuthorsASF  # the authors' ASF, transcribed there (tests/plugins is on sys.path)

ROOT = Path(__file__).resolve().parents[2]
SPEAKERS = [f"<s{k}>" for k in range(1, 10)]
HIDDEN = 32
CORPUS = ["Hi you", "Oh my God, he's lost it.", "What? No way!", "I'm fine, thanks... really.", "Now you feels ok"] * 4
AUDIO = dict(model_type="data2vec-audio", hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=64, conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
             num_conv_pos_embeddings=3, conv_pos_kernel_size=5, num_conv_pos_embedding_groups=2)
VIDEO = dict(model_type="timesformer", hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=64, image_size=32, patch_size=16, num_frames=8)
FUSION = {"meld": dict(beta_shift=0.1, heads=2), "iemocap": dict(beta_shift=0.2, heads=4)}
TINY = {"meld": ["fuser.heads=2"], "iemocap": []}  # MELD's 3 heads do not divide the tiny 64-d token


# -- the authors' modules (MELD/model.py; a folder instead of a hub id, CPU) -----------------------


class TeacherModel(nn.Module):
    """Teacher_model: RobertaModel + their 9 speaker tokens (resized embeddings), W: hidden -> 768, classifier."""

    def __init__(self, text_model: str, cls_num: int):
        super().__init__()
        from transformers import RobertaModel, RobertaTokenizer

        self.text_model = RobertaModel.from_pretrained(text_model)
        tokenizer = RobertaTokenizer.from_pretrained(text_model)
        tokenizer.add_special_tokens({"additional_special_tokens": SPEAKERS})
        self.text_model.resize_token_embeddings(len(tokenizer))
        self.W = nn.Linear(self.text_model.config.hidden_size, 768)
        self.classifier = nn.Linear(768, cls_num)

    def forward(self, batch_input_tokens, attention_masks):
        batch_context_output = self.text_model(batch_input_tokens, attention_masks).last_hidden_state[:, -1, :]
        batch_last_hidden = self.W(batch_context_output)
        return batch_last_hidden, self.classifier(batch_last_hidden)


class StudentAudio(nn.Module):
    """Student_Audio: Data2VecAudioModel (config updated with mask_time_length=3), frame 0, W."""

    def __init__(self, audio_model: str, cls_num: int):
        super().__init__()
        from transformers import Data2VecAudioModel

        self.model = Data2VecAudioModel.from_pretrained(audio_model)
        self.model.config.update({"mask_time_length": 3})
        self.W = nn.Linear(self.model.config.hidden_size, cls_num)

    def forward(self, batch_input):
        batch_audio_output = self.model(batch_input).last_hidden_state[:, 0, :]
        return batch_audio_output, self.W(batch_audio_output)


class StudentVideo(nn.Module):
    """Student_Video: TimesformerModel, CLS, W."""

    def __init__(self, video_model: str, cls_num: int):
        super().__init__()
        from transformers import TimesformerModel

        self.model = TimesformerModel.from_pretrained(video_model)
        self.W = nn.Linear(self.model.config.hidden_size, cls_num)

    def forward(self, batch_input):
        batch_video_output = self.model(batch_input).last_hidden_state[:, 0, :]
        return batch_video_output, self.W(batch_video_output)


@dataclass
class Authors:
    teacher: TeacherModel
    audio: StudentAudio
    video: StudentVideo
    fusion: AuthorsASF
    save_model: Path
    backbones: dict[str, str]

    def logits(self, tokens, values, pixels, video_first=False):
        """Their inference.py on one sample: every module's logits and the fusion's.

        MELD/inference.py calls fusion(text, audio, video), as training did; IEMOCAP/inference.py
        fusion(text, video, audio) (``video_first``).
        """
        with torch.no_grad():
            text_hidden, text_logits = self.teacher(tokens, torch.ones_like(tokens))
            audio_hidden, audio_logits = self.audio(values)
            video_hidden, video_logits = self.video(pixels)
            if video_first:
                fused = self.fusion(text_hidden, video_hidden, audio_hidden)
            else:
                fused = self.fusion(text_hidden, audio_hidden, video_hidden)
        return {"text": text_logits[0], "audio": audio_logits[0], "visual": video_logits[0], "fused": fused[0]}


# -- building the release ---------------------------------------------------------------------------


def backbone_folders(root: Path) -> dict[str, str]:
    """Local folders standing in for roberta-large, data2vec-audio-base-960h and timesformer-k400."""
    from transformers import AutoConfig, AutoModel, VideoMAEImageProcessor, Wav2Vec2FeatureExtractor

    from tiny_models import roberta_tokenizer_files

    text, audio, video = root / "roberta", root / "data2vec", root / "timesformer"
    roberta_tokenizer_files(CORPUS, text, vocab_size=300)
    size = len(json.loads((text / "vocab.json").read_text()))
    roberta = AutoConfig.for_model("roberta", hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=66, vocab_size=size)
    AutoModel.from_config(roberta).save_pretrained(text)
    AutoModel.from_config(AutoConfig.for_model(**AUDIO)).save_pretrained(audio)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(audio)
    AutoModel.from_config(AutoConfig.for_model(**VIDEO)).save_pretrained(video)
    VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(video)
    return {"text": str(text), "audio": str(audio), "visual": str(video)}


def randomise(module: nn.Module, seed: int) -> None:
    """Every weight random (norms near 1, the rest at about unit gain), so a misplaced tensor changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=g)
            if parameter.ndim == 1:
                parameter.copy_(1 + 0.1 * noise if name.endswith("weight") else 0.1 * noise)
            else:
                parameter.copy_(noise / parameter[0].numel() ** 0.5)


def build_release(root: Path, dataset: str, backbones: dict[str, str] | None = None) -> Authors:
    """The authors' four modules with random weights, saved as their save_model/ folder."""
    torch.manual_seed(1)
    backbones = backbones or backbone_folders(root / "backbones")
    classes = len(LABELS[dataset])
    teacher = TeacherModel(backbones["text"], classes)
    audio = StudentAudio(backbones["audio"], classes)
    video = StudentVideo(backbones["visual"], classes)
    fusion = AuthorsASF(classes, 768, HIDDEN, HIDDEN, FUSION[dataset]["beta_shift"], 0.2, FUSION[dataset]["heads"])
    for seed, module in enumerate((teacher, audio, video, fusion)):
        randomise(module, seed)
        module.eval()
    save_model = root / "save_model"
    state = teacher.state_dict()
    # transformers 4.27 saved RoBERTa's position_ids buffer (persistent then); their teacher.bin has it.
    # That is the only difference: 4.27.2's own RobertaModel, Data2VecAudioModel and TimesformerModel
    # (run once under today's torch) have exactly today's state-dict keys plus this one.
    positions = teacher.text_model.config.max_position_embeddings
    state["text_model.embeddings.position_ids"] = torch.arange(positions).expand((1, -1))
    for part, module_state in (("text", state), ("audio", audio.state_dict()), ("visual", video.state_dict()),
                               ("fuser", fusion.state_dict())):
        path = save_model / CHECKPOINTS[part]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(module_state, path)
    return Authors(teacher, audio, video, fusion, save_model, backbones)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, str]:
    return backbone_folders(tmp_path_factory.mktemp("backbones"))


@pytest.fixture(scope="module")
def release(tmp_path_factory, backbones) -> Authors:
    return build_release(tmp_path_factory.mktemp("meld_release"), "meld", backbones)


def imported(authors: Authors, output: Path, dataset: str = "meld", **options) -> Path:
    settings = [*TINY[dataset], *options.pop("settings", [])]
    return import_telme(authors.save_model, output, dataset, text_model=authors.backbones["text"],
                        audio_model=authors.backbones["audio"], video_model=authors.backbones["visual"],
                        settings=settings, **options)


# -- inputs: the tensors both sides consume -----------------------------------------------------------


def inputs(model: ERCModel, count: int = 4, seed: int = 5) -> list[dict[str, torch.Tensor]]:
    """Per sample: token ids ending in <mask> (varied lengths), a waveform, TimeSformer pixel values."""
    g = torch.Generator().manual_seed(seed)
    tokenizer = model.encoders["text"].tokenizer
    vocabulary = len(tokenizer)
    samples = []
    for row in range(count):
        length = 5 + 7 * row
        ids = torch.randint(5, vocabulary, (length,), generator=g)
        ids[-1] = tokenizer.mask_token_id
        samples.append({
            "input_ids": ids,
            "input_values": torch.randn(1600 + 900 * row, generator=g),
            "pixel_values": torch.randn(8, 3, 32, 32, generator=g),
        })
    return samples


def erckit_logits(model: ERCModel, samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    features = {
        "text": model.encoders["text"].collate([{"input_ids": s["input_ids"]} for s in samples]),
        "audio": model.encoders["audio"].collate([{"input_values": s["input_values"]} for s in samples]),
        "visual": model.encoders["visual"].collate([{"pixel_values": s["pixel_values"]} for s in samples]),
    }
    with torch.no_grad():
        outputs = {name: model.encode(name, features[name]) for name in ("text", "audio", "visual")}
        fused = model.fuse(outputs)
    return {**{name: out.logits for name, out in outputs.items()}, "fused": fused}


def authors_logits(authors: Authors, sample: dict[str, torch.Tensor], video_first: bool = False) -> dict[str, torch.Tensor]:
    return authors.logits(sample["input_ids"][None], sample["input_values"][None], sample["pixel_values"][None], video_first)


def assert_close(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert expected.abs().max().item() > 0.1, f"{what}: logits this small would make the 1e-5 bound meaningless"
    difference = (got - expected).abs().max().item()
    assert difference <= 1e-5, f"{what}: max abs difference {difference:.3g}"


# -- the import ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_command_writes_a_model_that_computes_the_authors_logits(tmp_path, backbones):
    """`erckit import-telme` in a subprocess, offline; then every logit against their modules, batch 1 and 4."""
    authors = build_release(tmp_path / "iemocap", "iemocap", backbones)
    output = tmp_path / "models" / "telme_iemocap"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "plugins" / "telme"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    # The installed console script when it sits beside this Python (PYTHONPATH makes it run this tree), else -m.
    script = Path(sys.executable).parent / "erckit"
    launcher = [str(script)] if script.is_file() else [sys.executable, "-m", "erckit"]
    command = [*launcher, "import-telme", str(authors.save_model), "--dataset", "iemocap",
               "-o", str(output), "--text-model", backbones["text"], "--audio-model", backbones["audio"],
               "--video-model", backbones["visual"]]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert str(output) in result.stderr and result.stdout == ""

    model = ERCModel.from_pretrained(output)
    assert model.labels == list(LABELS["iemocap"]) and model.use_fuser
    config = json.loads((output / "config.json").read_text())
    assert config["encoders"]["audio"]["pooling"] == "frame0"
    assert config["fuser"]["heads"] == 4 and config["fuser"]["order"] == ["audio", "visual"]
    assert "teacher.bin  sha256" in (output / "training_recipe.toml").read_text()
    samples = inputs(model)
    expected = [authors_logits(authors, s) for s in samples]
    for batch in (1, 4):
        for start in range(0, len(samples), batch):
            got = erckit_logits(model, samples[start : start + batch])
            for row in range(batch):
                for key, value in expected[start + row].items():
                    assert_close(got[key][row], value, f"{key}, sample {start + row}, batch {batch}")


def test_meld_import_matches_the_authors_and_keeps_their_label_order(tmp_path, release):
    model = ERCModel.from_pretrained(imported(release, tmp_path / "meld"))
    assert model.labels == list(LABELS["meld"])
    config = json.loads((tmp_path / "meld" / "config.json").read_text())
    assert config["encoders"]["audio"]["zero_longer_than"] == 30.0
    assert config["encoders"]["visual"]["zero_longer_than"] == 30.0
    samples = inputs(model)
    got = erckit_logits(model, samples)
    for row, sample in enumerate(samples):
        for key, value in authors_logits(release, sample).items():
            assert_close(got[key][row], value, f"{key}, sample {row}")


def test_a_label_order_of_the_users_permutes_every_classifier(tmp_path, release):
    """Rows follow the labels: the logit of 'joy' is the authors' 'joy' logit, whatever its position."""
    order = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]  # erckit's MELD reader order
    model = ERCModel.from_pretrained(imported(release, tmp_path / "reordered", labels=order))
    assert model.labels == order
    samples = inputs(model, count=2)
    got = erckit_logits(model, samples)
    index = [LABELS["meld"].index(label) for label in order]
    assert index != list(range(len(index)))
    for row, sample in enumerate(samples):
        for key, value in authors_logits(release, sample).items():
            assert_close(got[key][row], value[index], f"{key}, sample {row}")


def test_set_changes_the_model_table_iemocap_inference_order(tmp_path, release):
    """--set 'fuser.order=["visual", "audio"]': what IEMOCAP/inference.py computed with the same weights."""
    output = imported(release, tmp_path / "reversed", settings=['fuser.order=["visual", "audio"]'])
    model = ERCModel.from_pretrained(output)
    assert json.loads((output / "config.json").read_text())["fuser"]["order"] == ["visual", "audio"]
    samples = inputs(model, count=2)
    got = erckit_logits(model, samples)["fused"]
    for row, sample in enumerate(samples):
        assert_close(got[row], authors_logits(release, sample, video_first=True)["fused"], f"fused, sample {row}")
        assert (got[row] - authors_logits(release, sample)["fused"]).abs().max().item() > 1e-3  # the order matters


def test_labels_must_be_the_authors_ones(tmp_path, release):
    with pytest.raises(ErckitError, match="must name each of the authors' labels once"):
        imported(release, tmp_path / "out", labels=["anger", "joy"])
    assert not (tmp_path / "out").exists()


# -- one definition with the recipes ----------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["meld", "iemocap"])
def test_the_recipes_build_the_model_the_importer_builds(dataset):
    from erckit.data.readers import IEMOCAP_AUTHORS_LABELS, MELD_AUTHORS_LABELS

    recipe = tomllib.loads((ROOT / "recipes" / f"telme_{dataset}.toml").read_text(encoding="utf-8"))
    assert recipe["model"] == authors_model(dataset)
    assert tuple(recipe["data"]["labels"]) == LABELS[dataset]
    assert LABELS[dataset] == {"meld": MELD_AUTHORS_LABELS, "iemocap": IEMOCAP_AUTHORS_LABELS}[dataset]


def test_the_definition_is_a_fresh_copy_each_time():
    table = authors_model("meld")
    table["encoders"]["audio"]["config_overrides"]["mask_time_length"] = 99
    assert authors_model("meld")["encoders"]["audio"]["config_overrides"] == {"mask_time_length": 3}
    with pytest.raises(ErckitError, match="unknown TelME dataset 'emory'"):
        authors_model("emory")


# -- predict and evaluate use it like any model --------------------------------------------------------


def test_predict_and_evaluate_run_on_an_imported_model_with_text_only(tmp_path, release, capsys):
    """No media: the students get their stand-ins, the fusion zeroes their half of the token (reported as missing)."""
    from erckit.cli.main import main

    output = imported(release, tmp_path / "model")
    dialogues = tmp_path / "dialogues.jsonl"
    utterances = [{"speaker": "Ross", "text": "Hi you", "label": "joy"},
                  {"speaker": "Rachel", "text": "What? No way!", "label": "surprise"}]
    dialogues.write_text(json.dumps({"id": "d1", "utterances": utterances}) + "\n")
    assert main(["predict", str(output), str(dialogues)]) == 0
    (dialogue,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows = dialogue["utterances"]
    assert len(rows) == 2 and all(row["prediction"] in LABELS["meld"] for row in rows)
    assert all(row["modalities"] == ["text"] and sorted(row["missing"]) == ["audio", "visual"] for row in rows)
    assert main(["evaluate", str(output), str(dialogues), "--json", str(tmp_path / "scores.json")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["total_utterances"] == 2 and scores["excluded"]["unknown_labels"] == {}


# -- bad input: one line, nothing written --------------------------------------------------------------


def cli_import(authors: Authors, output: Path, capsys, *extra: str) -> tuple[int, str]:
    from erckit.cli.main import main

    code = main(["import-telme", str(authors.save_model), "--dataset", "meld", "-o", str(output),
                 "--text-model", authors.backbones["text"], "--audio-model", authors.backbones["audio"],
                 "--video-model", authors.backbones["visual"], *[f"--set={s}" for s in TINY["meld"]], *extra])
    return code, capsys.readouterr().err


@pytest.fixture
def broken(tmp_path, release) -> Authors:
    """A copy of the release to damage."""
    import shutil

    copy = tmp_path / "save_model"
    shutil.copytree(release.save_model, copy)
    return Authors(release.teacher, release.audio, release.video, release.fusion, copy, release.backbones)


class Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def damage(kind: str, save_model: Path, marker: Path) -> str:
    """Break one file of the release; returns what the error line must say."""
    teacher = save_model / CHECKPOINTS["text"]
    if kind == "missing file":
        (save_model / CHECKPOINTS["visual"]).unlink()
        return f"{save_model / CHECKPOINTS['visual']} is missing"
    if kind == "truncated file":
        data = teacher.read_bytes()
        teacher.write_bytes(data[: len(data) // 2])
        return "truncated or damaged"
    if kind == "wrong shape":
        state = torch.load(save_model / CHECKPOINTS["fuser"], weights_only=True)
        state["W_av.weight"] = torch.zeros(768, 65)
        torch.save(state, save_model / CHECKPOINTS["fuser"])
        return "W_av.weight has shape [768, 65], the model expects [768, 64]"
    if kind == "missing key":
        state = torch.load(save_model / CHECKPOINTS["audio"], weights_only=True)
        del state["model.encoder.layers.1.attention.k_proj.weight"]
        torch.save(state, save_model / CHECKPOINTS["audio"])
        return "1 weight(s) the model needs are missing, the first: model.encoder.layers.1.attention.k_proj.weight"
    if kind == "unexpected key":
        state = torch.load(save_model / CHECKPOINTS["visual"], weights_only=True)
        state["model.extra_head.weight"] = torch.zeros(3)
        torch.save(state, save_model / CHECKPOINTS["visual"])
        return "has no place for, the first: model.extra_head.weight"
    if kind == "not a plain state dict":
        torch.save({"W.weight": [1.0, 2.0], "W.bias": torch.zeros(7)}, save_model / CHECKPOINTS["audio"])
        return "not a plain state dict: key 'W.weight' holds list"
    if kind == "a whole module":
        torch.save(nn.Linear(768, 7), save_model / CHECKPOINTS["fuser"])
        return "refused: not a plain state dict of tensors (it asks for torch.nn.modules.linear.Linear)"
    if kind == "code in the pickle":
        torch.save({"classifier.weight": Evil(marker)}, teacher)
        return "refused: not a plain state dict of tensors"
    if kind == "non-finite weight":
        state = torch.load(save_model / CHECKPOINTS["fuser"], weights_only=True)
        state["W.bias"][2] = float("nan")
        torch.save(state, save_model / CHECKPOINTS["fuser"])
        return "W.bias holds non-finite values"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing file", "truncated file", "wrong shape", "missing key", "unexpected key",
                                  "not a plain state dict", "a whole module", "code in the pickle", "non-finite weight"])
def test_bad_release_is_one_line_and_writes_nothing(kind, tmp_path, broken, capsys):
    marker = tmp_path / "the_pickle_ran"
    expected = damage(kind, broken.save_model, marker)
    output = tmp_path / "models" / "telme"
    code, err = cli_import(broken, output, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], err
    assert "Traceback" not in err
    assert not output.exists()
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())  # no staging left beside it
    if kind == "code in the pickle":
        assert not marker.exists()
        torch.load(broken.save_model / CHECKPOINTS["text"], weights_only=False)  # the payload is real: trusted, it runs
        assert marker.exists()


def test_the_other_data_sets_release_is_named(tmp_path, release, capsys):
    from erckit.cli.main import main

    code = main(["import-telme", str(release.save_model), "--dataset", "iemocap", "-o", str(tmp_path / "m"),
                 "--text-model", release.backbones["text"], "--audio-model", release.backbones["audio"],
                 "--video-model", release.backbones["visual"]])
    err = capsys.readouterr().err
    assert code == 1 and "classifier.weight has 7 classes, the authors' iemocap model 6; is this the meld release? (--dataset meld)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "m").exists()


def test_an_existing_output_is_kept_unless_overwrite(tmp_path, release, capsys):
    output = tmp_path / "model"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    code, err = cli_import(release, output, capsys)
    assert code == 1 and "already exists" in err and "--overwrite" in err
    assert [p.name for p in output.iterdir()] == ["notes.txt"]
    code, err = cli_import(release, output, capsys, "--overwrite")
    assert code == 0, err
    assert (output / "config.json").is_file() and not (output / "notes.txt").exists()


def test_a_bad_setting_and_a_bad_backbone_are_one_line(tmp_path, release, capsys):
    code, err = cli_import(release, tmp_path / "a", capsys, "--set", "decoder.x=1")
    assert code == 1 and "expected encoders.NAME.KEY=VALUE" in err and len(err.strip().splitlines()) == 1
    code, err = cli_import(release, tmp_path / "b", capsys, "--set", "fuser.heads=5")
    assert code == 1 and "heads" in err and len(err.strip().splitlines()) == 1
    code, err = cli_import(release, tmp_path / "c", capsys, "--text-model", str(tmp_path / "nowhere"))
    assert code == 1 and "nowhere" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_help_imports_no_torch():
    code = "import sys\nfrom erckit.cli.main import main\ntry:\n    main(['import-telme', '--help'])\nexcept SystemExit:\n    pass\n" \
           "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins" / "telme")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "SAVE_MODEL_DIR" in result.stdout and result.stdout.strip().endswith("[]"), result.stdout + result.stderr
