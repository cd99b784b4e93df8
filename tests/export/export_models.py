"""The models the export tests build: every built-in and TelME component shape, tiny.

A module of its own (not conftest.py): test modules import it by name, and several conftest
modules share that name in one pytest run.
"""

from __future__ import annotations

from typing import Any

from erckit.data.demo import DEMO_LABELS
from tiny_models import builtin_media_recipe, teacher_recipe, telme_recipe

LABELS = list(DEMO_LABELS)


def bow_pair_recipe(fuser: str) -> dict[str, Any]:
    """Two bag-of-words encoders (the target alone, and with context) and a built-in fuser: cheap to export."""
    return {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {
            "encoders": {
                "text": {"factory": "example.BagOfWords.v1", "buckets": 64, "dim": 16, "context": False},
                "ctx": {"factory": "example.BagOfWords.v1", "buckets": 64, "dim": 16, "context": True},
            },
            "fuser": {"factory": fuser},
        },
        "stages": [{"kind": "supervised", "encoders": ["text", "ctx"]}, {"kind": "fuse"}],
    }


# Exporting the media encoders takes 20-50 s each on 2 busy cores: those tests are marked slow.
SLOW = {"telme", "builtin"}
RECIPES = {
    "teacher": teacher_recipe,  # TelME's RoBERTa teacher alone (no fuser)
    "telme": telme_recipe,  # RoBERTa teacher, data2vec-audio student (hooked pos-convs), TimeSformer, ASF
    "builtin": builtin_media_recipe,  # LogMelAudio, TimmFrames.v2, ModalityShift
    "concat": lambda: bow_pair_recipe("erckit.ConcatFuser.v1"),
    "late": lambda: bow_pair_recipe("erckit.LateFusion.v1"),
}
