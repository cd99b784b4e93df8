"""Score a model on labelled dialogues: the ERC metrics, a confusion matrix, a plot.

``evaluate(model, dialogues)`` predicts every utterance (``erckit.predict``)
and scores those whose gold label the model knows. Utterances with a label the
model does not know are counted by name, left out of the metrics, and a
warning says so; unlabelled utterances are counted and left out. Nothing
crashes on foreign labels.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import DataError, ErckitError
from .metrics import Report, classification_report

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .data.types import Dialogue
    from .model import ERCModel
    from .predict import DialoguePrediction


@dataclass
class Evaluation:
    """Metrics over the scored utterances plus an account of those left out."""

    report: Report
    total: int  # utterances predicted
    unknown_labels: dict[str, int] = field(default_factory=dict)  # gold label -> utterances excluded
    unlabelled: int = 0
    predictions: list["DialoguePrediction"] = field(default_factory=list, repr=False)

    @property
    def excluded(self) -> int:
        return sum(self.unknown_labels.values()) + self.unlabelled

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.report.to_dict(),
            "total_utterances": self.total,
            "excluded": {"unknown_labels": dict(self.unknown_labels), "unlabelled": self.unlabelled},
        }


def evaluate(model: "ERCModel", dialogues: Sequence["Dialogue"], **options: Any) -> Evaluation:
    """Predict (``options`` as for ``erckit.predict.predict``) and score against the gold labels."""
    from .predict import predict

    predictions = predict(model, dialogues, **options)
    return score(predictions, model.labels)


def score(predictions: Sequence["DialoguePrediction"], labels: Sequence[str]) -> Evaluation:
    """Metrics of ``predictions`` against their gold labels (see the module docstring for exclusions)."""
    index = {label: i for i, label in enumerate(labels)}
    gold: list[int] = []
    predicted: list[int] = []
    unknown: Counter[str] = Counter()
    unlabelled = 0
    total = 0
    for dialogue in predictions:
        for p in dialogue.utterances:
            total += 1
            if not all(math.isfinite(v) for v in p.probabilities.values()):
                # Metrics over argmax(NaN) would look like results; they are not.
                raise ErckitError(
                    f"dialogue {p.dialogue_id!r}, utterance {p.position}: the model gave non-finite probabilities "
                    f"({', '.join(f'{k}={v}' for k, v in p.probabilities.items() if not math.isfinite(v))}); "
                    "its weights are probably broken (NaN or infinite), nothing was scored"
                )
            if p.gold is None:
                unlabelled += 1
            elif p.gold not in index:
                unknown[p.gold] += 1
            else:
                gold.append(index[p.gold])
                predicted.append(index[p.label])
    if unknown:
        names = ", ".join(f"{label!r} ({count})" for label, count in sorted(unknown.items()))
        warnings.warn(
            f"{sum(unknown.values())} utterance(s) have labels the model does not know and are excluded "
            f"from the metrics: {names}; the model's labels: {', '.join(labels)}",
            stacklevel=2,
        )
    if not gold:
        raise DataError(
            f"nothing to score: none of the {total} utterance(s) has a label the model knows "
            f"({unlabelled} unlabelled, {sum(unknown.values())} with unknown labels)"
        )
    report = classification_report(gold, predicted, list(labels))
    return Evaluation(report, total, dict(sorted(unknown.items())), unlabelled, list(predictions))


# ----------------------------------------------------------------- reading data


def load_dialogues(source: str | Path, split: str = "test") -> list["Dialogue"]:
    """Dialogues to evaluate on: a dialogue JSONL file, a directory of ``<split>.jsonl``, or a recipe's data set.

    Labels are read as free strings (JSONL), so labels the model does not know
    reach ``score`` and are reported there rather than failing the read.
    """
    from .data.readers import read_dialogue_jsonl

    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        file = path / f"{split}.jsonl"
        if not file.is_file():
            found = sorted(p.stem for p in path.glob("*.jsonl"))
            raise DataError(f"{path}: no split {split!r} ({file.name} missing); available: {', '.join(found) or 'none'}")
        path = file
    elif path.suffix == ".toml":
        from .recipe import load_recipe
        from .recipe.corpus import load_corpus

        recipe = load_recipe(path)
        corpus = load_corpus(recipe)  # the reader training used, with the recipe's arguments
        dialogues = corpus.split(split)
        _report_problems(corpus.problems)
        return dialogues
    problems: list[str] = []
    dialogues = read_dialogue_jsonl(path, None, problems)
    _report_problems(problems)
    return dialogues


def _report_problems(problems: Sequence[str]) -> None:
    for problem in problems[:20]:
        warnings.warn(problem, stacklevel=2)
    if len(problems) > 20:
        warnings.warn(f"... and {len(problems) - 20} more data problems", stacklevel=2)


# -------------------------------------------------------------------- output


def render(evaluation: Evaluation) -> "RenderableType":
    """Rich tables: headline metrics, per-class precision/recall/F1/support, confusion matrix."""
    from rich.console import Group
    from rich.table import Table

    from .terminal import escape, text

    report = evaluation.report
    headline = Table(title="evaluation", show_header=True, header_style="bold")
    for name in ("utterances", "weighted F1", "macro F1", "accuracy", "excluded"):
        headline.add_column(name, justify="right")
    headline.add_row(str(report.count), f"{report.weighted_f1:.4f}", f"{report.macro_f1:.4f}",
                     f"{report.accuracy:.4f}", str(evaluation.excluded))

    classes = Table(title="per class", show_header=True, header_style="bold")
    classes.add_column("label")
    for name in ("precision", "recall", "F1", "support"):
        classes.add_column(name, justify="right")
    for c in report.per_class:
        classes.add_row(text(c.label), f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}", str(c.support))

    confusion = Table(title="confusion matrix (rows: gold, columns: predicted)", show_header=True, header_style="bold")
    confusion.add_column("gold \\ predicted")
    for label in report.labels:
        confusion.add_column(text(label), justify="right")
    for label, row in zip(report.labels, report.confusion):
        confusion.add_row(text(label), *(_cell(value, i == report.labels.index(label)) for i, value in enumerate(row)))
    parts: list[Any] = [headline, classes, confusion]
    if evaluation.unknown_labels:
        names = ", ".join(f"{escape(label)} ({count})" for label, count in evaluation.unknown_labels.items())
        parts.append(f"[yellow]excluded, labels unknown to the model:[/] {names}")
    if evaluation.unlabelled:
        parts.append(f"[yellow]excluded, unlabelled:[/] {evaluation.unlabelled}")
    return Group(*parts)


def _cell(value: int, diagonal: bool) -> str:
    if value == 0:
        return "[dim]0[/]"
    return f"[bold green]{value}[/]" if diagonal else str(value)


def write_json(evaluation: Evaluation, path: str | Path) -> Path:
    """The results as JSON (metrics, per class, confusion matrix, exclusions), written atomically."""
    path = Path(path)
    _atomic_write(path, (json.dumps(evaluation.to_dict(), indent=2, allow_nan=False) + "\n").encode("utf-8"))
    return path


def plot_confusion(evaluation: Evaluation, path: str | Path) -> Path:
    """The confusion matrix as a PNG (row-normalised colours, counts in cells). Needs matplotlib."""
    path = Path(path)
    _check_parent(path)
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed; must precede pyplot
        import matplotlib.pyplot as plt
    except ImportError:
        raise ErckitError('--plot needs matplotlib, which is not installed: pip install "erckit[plot]"') from None
    report = evaluation.report
    labels, matrix = report.labels, report.confusion
    normalised = [[v / max(1, sum(row)) for v in row] for row in matrix]
    size = max(4.0, 0.7 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    try:
        image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
        axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        axes.set_yticks(range(len(labels)), labels)
        axes.set_xlabel("predicted")
        axes.set_ylabel("gold")
        axes.set_title(f"weighted F1 {report.weighted_f1:.4f} ({report.count} utterances)")
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                axes.text(j, i, str(value), ha="center", va="center",
                          color="white" if normalised[i][j] > 0.5 else "black", fontsize=8)
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of gold row")
        figure.tight_layout()
        import io

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120)
    finally:
        plt.close(figure)
    _atomic_write(path, buffer.getvalue())
    return path


def _check_parent(path: Path) -> None:
    if not path.absolute().parent.is_dir():
        raise ErckitError(f"output directory {path.absolute().parent} does not exist (for {path})")


def _atomic_write(path: Path, data: bytes) -> None:
    from .fileio import atomic_write_bytes

    _check_parent(path)
    atomic_write_bytes(path, data)


__all__ = ["Evaluation", "evaluate", "load_dialogues", "plot_confusion", "render", "score", "write_json"]
