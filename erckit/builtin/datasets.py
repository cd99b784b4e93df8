"""Built-in dataset readers, registered through the same plugin hook third parties use.

Importing this module must not import torch (recipe validation imports it): the
readers are pure Python and media decoding happens later, in the data pipeline.
Each factory's signature is its recipe schema; relative roots are resolved
against the current working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from erckit.data.readers import Profile
from erckit.data.readers.emorynlp import EMORYNLP_SOURCE
from erckit.data.readers.iemocap import IEMOCAP_SOURCE
from erckit.data.readers.meld import MELD_SOURCE
from erckit.data.types import Corpus
from erckit.plugins import hookimpl


def meld(root: str, labels: list[str] | None = None, profile: Profile = "erckit") -> Corpus:
    """MELD (7 emotions): the official *_sent_emo.csv files plus dia{D}_utt{U}.mp4 clips under root.

    profile "authors": as TelME's authors read it (their *_meld_emo.csv if present, raw text, file
    order, their speaker numbering carried across dialogues).
    """
    from erckit.data.readers import read_meld

    return read_meld(Path(root), labels, profile)


def iemocap(root: str, labels: list[str] | None = None, profile: Profile = "erckit") -> Corpus:
    """IEMOCAP (6 emotions): {split}.csv in erckit's or the TelME authors' layout, wav/avi media under root.

    profile "authors" (authors' layout): utterance ids as speakers numbered as their code did, raw text.
    """
    from erckit.data.readers import read_iemocap

    return read_iemocap(Path(root), labels, profile)


def emorynlp(root: str, labels: list[str] | None = None) -> Corpus:
    """EmoryNLP (7 emotions, text only): emorynlp_{split}_final.csv files under root."""
    from erckit.data.readers import read_emorynlp

    return read_emorynlp(Path(root), labels)


def dialogue_jsonl(root: str, labels: list[str] | None = None) -> Corpus:
    """Your own data: root/{train,dev,test}.jsonl dialogues (+ labels.json), media relative to the files."""
    from erckit.data.readers import read_jsonl_dataset

    return read_jsonl_dataset(Path(root), labels)


def demo(
    root: str = "data/demo",
    seed: int = 0,
    labels: list[str] | None = None,
    train_dialogues: int = 60,
    dev_dialogues: int = 15,
    test_dialogues: int = 20,
) -> Corpus:
    """Synthetic 4-emotion text+audio+video demo; generated into root (seconds) if missing."""
    from erckit.data.demo import ensure_demo
    from erckit.data.readers import read_jsonl_dataset

    counts = {"train": train_dialogues, "dev": dev_dialogues, "test": test_dialogues}
    return read_jsonl_dataset(ensure_demo(Path(root), seed, dialogues=counts), labels, name="Demo")


# What ``erckit recipe check`` says when a root is missing (see erckit.recipe.data_paths).
meld.data_source = MELD_SOURCE  # type: ignore[attr-defined]
iemocap.data_source = IEMOCAP_SOURCE  # type: ignore[attr-defined]
emorynlp.data_source = EMORYNLP_SOURCE  # type: ignore[attr-defined]
demo.creates_root = True  # type: ignore[attr-defined]

DATASETS: dict[str, Callable[..., Corpus]] = {
    "erckit.MELD.v1": meld,
    "erckit.IEMOCAP.v1": iemocap,
    "erckit.EmoryNLP.v1": emorynlp,
    "erckit.DialogueJSONL.v1": dialogue_jsonl,
    "erckit.Demo.v1": demo,
}


@hookimpl
def register_components(register: Callable[..., None]) -> None:
    for name, factory in DATASETS.items():
        register("datasets", name, factory)
