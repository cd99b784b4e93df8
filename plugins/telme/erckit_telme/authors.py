"""TelME as its authors built it: the model tables, labels and checkpoint layout (no torch).

One source of truth for the model the authors' released weights belong to:
``erckit import-telme`` builds its model from ``authors_model`` and
``recipes/telme_{meld,iemocap}.toml`` spell out the same ``[model]`` tables
(tests/plugins/test_telme_import.py holds them equal). The numbers are those of
yuntaeyang/TelME: MELD/ and IEMOCAP/ model.py (their modules), inference.py
(their fusion's settings), student.py (``mask_time_length = 3``), preprocessing.py
and dataset.py (their label order, their media handling).
"""

from __future__ import annotations

import copy
from typing import Any

DATASETS = ("meld", "iemocap")

# Their emotion lists, sorted alphabetically by their preprocessing: the classifier rows' order.
# Under erckit's names (IEMOCAP ang, exc, fru, hap, neu, sad); equal to erckit's
# MELD_AUTHORS_LABELS / IEMOCAP_AUTHORS_LABELS (a test holds them so).
LABELS = {
    "meld": ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"),
    "iemocap": ("anger", "excited", "frustration", "happy", "neutral", "sadness"),
}

# The backbones their scripts load, by encoder name.
BACKBONES = {
    "text": "roberta-large",
    "audio": "facebook/data2vec-audio-base-960h",
    "visual": "facebook/timesformer-base-finetuned-k400",
}

# Their save_model/ folder: where each of their modules was torch.save'd, by erckit part.
CHECKPOINTS = {
    "text": "teacher.bin",
    "audio": "student_audio/total_student.bin",
    "visual": "student_video/total_student.bin",
    "fuser": "total_fusion.bin",
}

_TEXT = {
    "factory": "telme.RobertaTeacher.v1",
    "pretrained": BACKBONES["text"],
    "embedding_dim": 768,
    "preprocessing": "authors",
    "padding_side": "left",
}
_AUDIO = {
    "factory": "telme.AudioStudent.v1",
    "pretrained": BACKBONES["audio"],
    "preprocessing": "authors",
    "pooling": "frame0",
    "config_overrides": {"mask_time_length": 3},
}
_VISUAL = {
    "factory": "telme.VisualStudent.v1",
    "pretrained": BACKBONES["visual"],
    "frames": 8,
    "preprocessing": "authors",
}
_FUSER = {"factory": "telme.ASF.v1", "dim": 768, "dropout": 0.2, "order": ["audio", "visual"]}

_MODELS: dict[str, dict[str, Any]] = {
    "meld": {
        "anchor": "text",
        "encoders": {
            "text": _TEXT,
            "audio": {**_AUDIO, "zero_longer_than": 30.0},  # MELD clips over 30 s became zeros
            "visual": {**_VISUAL, "zero_longer_than": 30.0},
        },
        "fuser": {**_FUSER, "beta_shift": 0.1, "heads": 3},
    },
    "iemocap": {
        "anchor": "text",
        "encoders": {"text": _TEXT, "audio": _AUDIO, "visual": _VISUAL},
        "fuser": {**_FUSER, "beta_shift": 0.2, "heads": 4},
    },
}


def authors_model(dataset: str) -> dict[str, Any]:
    """The ``[model]`` table of the authors' TelME for ``dataset`` ('meld' or 'iemocap'), a fresh copy."""
    from erckit.errors import ErckitError

    if dataset not in _MODELS:
        raise ErckitError(f"unknown TelME dataset {dataset!r}; the authors released {' and '.join(DATASETS)}")
    return copy.deepcopy(_MODELS[dataset])
