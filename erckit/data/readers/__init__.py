"""Dataset readers: each turns a corpus on disk into a ``Corpus`` of ``Dialogue``s.

Pure Python (no torch at import time: recipe validation imports these).
Every reader takes ``labels`` to override the label order; an unknown label is
a ``DataError`` naming label, file and line. Tolerated issues (missing clips,
non-UTF-8 lines, missing media files) go to ``corpus.problems``. The MELD and
IEMOCAP readers also take ``profile`` ("erckit" or "authors": read as the TelME
authors' preprocessing did); ``*_AUTHORS_LABELS`` are those authors' label orders.
"""

from .emorynlp import EMORYNLP_LABELS, read_emorynlp
from .iemocap import IEMOCAP_AUTHORS_LABELS, IEMOCAP_CODES, IEMOCAP_LABELS, iemocap_speaker, read_iemocap
from .jsonl import read_dialogue_jsonl, read_jsonl_dataset
from .meld import MELD_AUTHORS_LABELS, MELD_LABELS, read_meld
from ._authors import PROFILES, Profile, carried_speaker_numbers
from ._csv import fix_text

__all__ = [
    "EMORYNLP_LABELS",
    "IEMOCAP_AUTHORS_LABELS",
    "IEMOCAP_CODES",
    "IEMOCAP_LABELS",
    "MELD_AUTHORS_LABELS",
    "MELD_LABELS",
    "PROFILES",
    "Profile",
    "carried_speaker_numbers",
    "fix_text",
    "iemocap_speaker",
    "read_dialogue_jsonl",
    "read_emorynlp",
    "read_iemocap",
    "read_jsonl_dataset",
    "read_meld",
]
