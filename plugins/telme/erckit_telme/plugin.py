"""The TelME components' factories and their registration. Imports without torch.

Each factory's signature is its recipe schema (validated before anything heavy
is imported); the body imports the torch module that implements it.
``num_classes``, ``input_dims`` and ``anchor`` are injected by erckit.
"""

from __future__ import annotations

from typing import Any, Literal

from erckit.plugins import hookimpl


def roberta_teacher(
    num_classes: int,
    pretrained: str = "roberta-large",
    tokenizer: str | None = None,
    config: dict[str, Any] | None = None,
    max_length: int | None = None,
    embedding_dim: int = 768,
    padding_side: Literal["right", "left"] | None = None,
    preprocessing: Literal["erckit", "authors"] = "erckit",
    config_overrides: dict[str, Any] | None = None,
) -> Any:
    """Text teacher: masked-LM encoder read at '<context> SEP Now <sK> feels MASK'.

    pretrained: hub id or local directory of any HF masked-LM encoder (ignored
    when ``config`` is given). tokenizer: defaults to ``pretrained``;
    ``"erckit:bytes"`` builds a byte-level one locally. config: a dict with
    ``model_type`` for a randomly initialised model. max_length: token limit
    including the mask (default: the model's usable positions, 512 for RoBERTa).
    embedding_dim: size of the projected mask state (the teacher embedding).
    padding_side: default right for erckit, left for authors.
    preprocessing: "erckit" (each utterance tokenised on its own, speaker
    tokens and prompt as erckit defines them) or "authors" (the token ids TelME's
    authors trained their released teacher on: their string as transformers
    4.27 tokenised it).
    config_overrides: settings of the backbone's HF config to change (each one it has).
    """
    from .teacher import RobertaTeacher

    return RobertaTeacher(
        num_classes, pretrained, tokenizer, config, max_length, embedding_dim, padding_side, preprocessing,
        config_overrides,
    )


def audio_student(
    num_classes: int,
    pretrained: str = "facebook/data2vec-audio-base-960h",
    config: dict[str, Any] | None = None,
    max_seconds: float | None = None,
    preprocessing: Literal["erckit", "authors"] = "erckit",
    pooling: Literal["mean", "frame0"] = "mean",
    zero_longer_than: float | None = None,
    config_overrides: dict[str, Any] | None = None,
) -> Any:
    """Audio student: data2vec-audio (any wav2vec2-family model) on 16 kHz audio.

    max_seconds: longer clips are cut to this many seconds from their start
    ("erckit" preprocessing only). preprocessing: "erckit" (decoded at 16 kHz,
    normalised per clip) or "authors" (the TelME authors' input: librosa's
    22,050 Hz read fed as 16 kHz, their processor, the last 400,000 values;
    needs the plugin's extra ``erckit-telme[authors]``). pooling: "mean" over
    the real frames, or "frame0" (the first frame, as the authors). zero_longer_than:
    clips longer than this many seconds become the authors' stand-in, 1,412 zeros
    (MELD: 30). config_overrides: settings of the backbone's HF config to change,
    e.g. ``{mask_time_length = 3}`` (each must be one it has).
    """
    from .audio import AudioStudent

    return AudioStudent(
        num_classes, pretrained, config, max_seconds, preprocessing, pooling, zero_longer_than, config_overrides
    )


def visual_student(
    num_classes: int,
    pretrained: str = "facebook/timesformer-base-finetuned-k400",
    config: dict[str, Any] | None = None,
    frames: int = 8,
    preprocessing: Literal["erckit", "authors"] = "erckit",
    zero_longer_than: float | None = None,
    config_overrides: dict[str, Any] | None = None,
) -> Any:
    """Visual student: TimeSformer over ``frames`` RGB frames of the utterance, CLS pooling.

    preprocessing: "erckit" (erckit's decoder: RGB frames uniformly over the span, antialiased
    resize, the backbone's processor statistics) or "authors" (TelME's authors' frames: OpenCV,
    BGR, every (frame_count // frames)-th frame, or IEMOCAP's window rule when the utterance has a
    span; transformers 4.27's VideoMAE processor with ImageNet statistics; needs
    ``pip install "erckit-telme[authors]"``). zero_longer_than: authors' mode only, their MELD
    rule: a clip whose audio lasts longer (librosa's measure) gets all-zero pixel values.
    config_overrides: settings of the backbone's HF config, on pretrained weights too.
    """
    from .visual import VisualStudent

    return VisualStudent(num_classes, pretrained, config, frames, preprocessing, zero_longer_than, config_overrides)


def response_kd(tau: float = 4.0, beta: float = 1.0, gamma: float = 1.0) -> Any:
    """DIST response KD: tau^2 * (beta * (1 - row Pearson) + gamma * (1 - column Pearson)) of softmax(z/tau)."""
    from .distill import ResponseKD

    return ResponseKD(tau, beta, gamma)


def feature_kd(temperature: float = 1.0) -> Any:
    """Feature KD: KL(softmax(T T^T / t) || log_softmax(T S^T / t)) on L2-normalised embeddings."""
    from .distill import FeatureKD

    return FeatureKD(temperature)


def asf(
    num_classes: int,
    dim: int = 768,
    beta_shift: float = 0.1,
    heads: int = 3,
    dropout: float = 0.2,
    order: list[str] | None = None,
    input_dims: dict[str, int] | None = None,
    anchor: str = "text",
) -> Any:
    """The authors' attention-based modality shifting: one [audio; visual] token shifts the teacher embedding.

    dim: the anchor's embedding size (must equal it). order: the non-verbal modalities
    in the concatenated token (default: the model's encoder order; the authors' is
    audio, visual). heads must divide the token's size (1536 for two 768-d students).
    Computed per sample (the authors' attention mixed each mini-batch).
    """
    from erckit.errors import ErckitError

    from .asf import ASF

    if input_dims is None:
        raise ErckitError("telme.ASF needs input_dims (injected by erckit: modality -> embedding dim, anchor first)")
    return ASF(num_classes, dim, beta_shift, heads, dropout, dict(input_dims), anchor, order)


@hookimpl
def register_components(register: Any) -> None:
    register("encoders", "telme.RobertaTeacher.v1", roberta_teacher)
    register("encoders", "telme.AudioStudent.v1", audio_student)
    register("encoders", "telme.VisualStudent.v1", visual_student)
    register("distillers", "telme.ResponseKD.v1", response_kd)
    register("distillers", "telme.FeatureKD.v1", feature_kd)
    register("fusers", "telme.ASF.v1", asf)


IMPORT_HELP = "import the TelME authors' released weights (their save_model/ folder) as an erckit model directory"


def configure_import(parser: Any) -> None:
    """``erckit import-telme``'s arguments (argparse only: ``--help`` imports no torch)."""
    from .authors import BACKBONES, CHECKPOINTS, DATASETS, LABELS

    parser.description = (
        "The TelME authors' model as recipes/telme_<dataset>.toml builds it, with their released weights, "
        f"written as an ordinary erckit model directory. SAVE_MODEL_DIR holds {', '.join(CHECKPOINTS.values())}, read with "
        "torch.load(weights_only=True); every key and shape is checked; nothing is written on any error."
    )
    parser.add_argument("save_model_dir", metavar="SAVE_MODEL_DIR", help="the authors' save_model/ folder (from their model.tar.gz)")
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="which release: meld or iemocap")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="the model directory to write")
    for option, name in (("--text-model", "text"), ("--audio-model", "audio"), ("--video-model", "visual")):
        parser.add_argument(option, metavar="ID_OR_DIR", help=f"HF id or local folder of the backbone (default {BACKBONES[name]})")
    parser.add_argument(
        "--labels", metavar="A,B,...",
        help="the model's label order, comma-separated (default the authors': "
        + "; ".join(f"{d} {','.join(LABELS[d])}" for d in DATASETS) + "); the classifier rows are reordered to it",
    )
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
        help="change the model table: encoders.NAME.KEY=VALUE or fuser.KEY=VALUE (VALUE as TOML; repeatable)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing MODEL_DIR")


def run_import(args: Any) -> int:
    from .importer import import_telme

    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    output = import_telme(
        args.save_model_dir, args.output, args.dataset, text_model=args.text_model, audio_model=args.audio_model,
        video_model=args.video_model, labels=labels, settings=args.settings, overwrite=args.overwrite,
    )
    import sys

    # A message, not data: stderr, as erckit's own commands do.
    print(f"wrote {output} (the authors' TelME for {args.dataset}); use it with erckit predict / erckit evaluate", file=sys.stderr)
    return 0


@hookimpl
def register_commands(add_command: Any) -> None:
    add_command("import-telme", IMPORT_HELP, configure_import, run_import)
