"""EmoryNLP (Zahiri & Choi, 2018), text only, in the CSV layout MELD uses.

Files (``root`` searched two levels deep): ``emorynlp_{split}_final.csv`` or
``{split}.csv`` for split in train, dev, test. Columns: ``Utterance``,
``Speaker``, ``Emotion``, ``Utterance_ID`` and a dialogue column, ``Scene_ID``
or ``Dialogue_ID``; with ``Season`` and ``Episode`` present the dialogue id is
``s{Season}_e{Episode}_c{Scene_ID}`` (scene numbers restart every episode),
else ``scene{Scene_ID}``. A speaker written as a list (``['Joey Tribbiani']``)
is unwrapped. Labels are matched case-insensitively against the 7 classes.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from ...errors import DataError
from ..types import Corpus, Dialogue, Utterance
from ._csv import check_label, find_file, fix_text, parse_int, read_csv, require_root, resolve_labels

EMORYNLP_LABELS = ("Joyful", "Mad", "Neutral", "Peaceful", "Powerful", "Sad", "Scared")
SPLITS = ("train", "dev", "test")
EMORYNLP_SOURCE = (
    "EmoryNLP is not shipped with erckit: it is published at https://github.com/emorynlp/emotion-detection; "
    "erckit reads it as emorynlp_{train,dev,test}_final.csv files (docs/data.md)."
)
COLUMNS = ("Utterance", "Speaker", "Emotion", "Utterance_ID")


def read_emorynlp(root: str | Path, labels: Sequence[str] | None = None) -> Corpus:
    """A lazy text-only ``Corpus`` over EmoryNLP CSVs at ``root``."""
    root = Path(root).expanduser().absolute()
    require_root(root, "EmoryNLP", EMORYNLP_SOURCE, "emorynlp")
    label_set = resolve_labels(EMORYNLP_LABELS, labels)
    corpus = Corpus(name="EmoryNLP", labels=label_set, splits={})
    for split in SPLITS:
        path = find_file(root, [f"emorynlp_{split}_final.csv", f"emorynlp_{split}.csv", f"{split}.csv"])
        if path is not None:
            corpus.splits[split] = (lambda p=path: read_emorynlp_split(p, label_set, corpus.problems))
    if not corpus.splits:
        raise DataError(f"no EmoryNLP CSVs under {root}: expected emorynlp_{{train,dev,test}}_final.csv")
    return corpus


def read_emorynlp_split(path: Path, labels: Sequence[str], problems: list[str]) -> list[Dialogue]:
    groups: dict[str, list[tuple[int, Utterance]]] = defaultdict(list)
    order: list[str] = []
    for row in read_csv(path, COLUMNS, problems):
        v = row.values
        scene_column = "Scene_ID" if "Scene_ID" in v else "Dialogue_ID" if "Dialogue_ID" in v else None
        if scene_column is None:
            raise DataError(f"{path}: missing column 'Scene_ID' (or 'Dialogue_ID')")
        scene = v[scene_column].strip()
        if "Season" in v and "Episode" in v:
            dialogue = f"s{v['Season'].strip()}_e{v['Episode'].strip()}_c{scene}"
        else:
            dialogue = f"scene{scene}"
        if dialogue not in groups:
            order.append(dialogue)
        number = parse_int(v["Utterance_ID"], "Utterance_ID", path, row.line)
        groups[dialogue].append(
            (
                number,
                Utterance(
                    speaker=_speaker(v["Speaker"]),
                    text=fix_text(v["Utterance"]),
                    label=check_label(v["Emotion"], labels, {}, path, row.line),
                    id=f"{dialogue}_u{number}",
                ),
            )
        )
    return [Dialogue(d, tuple(u for _, u in sorted(groups[d], key=lambda i: i[0]))) for d in order]


def _speaker(raw: str) -> str:
    raw = raw.strip()
    if raw.startswith("[") and raw.endswith("]"):
        try:
            names = ast.literal_eval(raw)
            if isinstance(names, list) and names:
                return ", ".join(fix_text(str(n)) for n in names)
        except (ValueError, SyntaxError):
            pass
    return fix_text(raw)
