"""A recipe's data, built one way for every command that reads it.

``erckit train``, ``erckit data prepare`` and ``erckit data stats`` (and
``erckit evaluate`` on a recipe) read a recipe's ``[data]`` table through these
functions, so they agree on which keys go to the dataset reader, which labels
index the classes, which utterances become samples, which media each split
needs and which cache holds it:

* ``load_corpus(data)``: the registered reader called with the table's reader
  arguments (every key ``DataConfig`` does not declare).
* ``recipe_splits(data)``: labels (the recipe's override, else the corpus's) and
  the train/dev/test samples (causal context cut to ``max_context``; every
  utterance labelled), or one error when train or dev is empty.
* ``recipe_media(encoders, splits)``: the media specs each split needs, computed
  as training computes them (``encoder_media``: every spec the encoders declare,
  deduplicated, in a stable order).
* ``media_resolver(data)``: the decoded-media cache and policy of the recipe.

``erckit data prepare RECIPE`` fills, for every split, the specs of all the
recipe's encoders, so whatever any stage decodes is already in the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..data.types import Corpus, MediaSpec, Sample, make_samples
from ..errors import ErckitError
from .schema import DataConfig, Recipe

if TYPE_CHECKING:
    from ..data.pipeline import MediaResolver

SPLITS: tuple[str, ...] = ("train", "dev", "test")
"""The roles a recipe's splits play; ``data.train_split`` etc. name the corpus splits behind them."""

PROBLEMS_SHOWN = 20


@dataclass
class RecipeData:
    """What training reads from a recipe's data: the corpus, the label list and samples per split."""

    corpus: Corpus
    labels: list[str]
    splits: dict[str, list[Sample]]  # "train", "dev", "test" -> samples ([] when the split is absent)
    problems: list[str] = field(default_factory=list)  # what the reader tolerated, to report


def _data_config(source: Recipe | DataConfig) -> DataConfig:
    return source.data if isinstance(source, Recipe) else source


def load_corpus(source: Recipe | DataConfig) -> Corpus:
    """The recipe's dataset: its registered reader called with the ``[data]`` table's reader arguments."""
    from .resolve import create

    data = _data_config(source)
    return create("datasets", {"dataset": data.dataset, **data.args}, key="dataset")


def split_name(data: DataConfig, role: str) -> str | None:
    """The corpus split that plays ``role`` ('train', 'dev' or 'test'); None when the recipe has none."""
    if role not in SPLITS:
        raise ErckitError(f"unknown split {role!r}; choose one of: {', '.join(SPLITS)}")
    return getattr(data, f"{role}_split")


def recipe_splits(
    source: Recipe | DataConfig,
    corpus: Corpus | None = None,
    labels: Sequence[str] | None = None,
) -> RecipeData:
    """Labels and train/dev/test samples of a recipe, as training uses them.

    ``labels`` (default: the recipe's ``data.labels``, else the corpus's) fixes
    the class indices. Every utterance of every split needs a label (every split
    trains or scores); ``max_context`` cuts each sample's causal context. A
    missing or empty train or dev split is an error: training needs both (dev
    selects the best epoch); a missing test split gives no test samples.
    """
    data = _data_config(source)
    corpus = corpus if corpus is not None else load_corpus(data)
    chosen = list(labels if labels is not None else (data.labels or corpus.labels))

    def samples(role: str) -> list[Sample]:
        name = split_name(data, role)
        if name is None or name not in corpus.splits:
            return []
        return make_samples(corpus.split(name), chosen, max_context=data.max_context, require_labels=True)

    splits = {role: samples(role) for role in SPLITS}
    if not splits["train"]:
        raise ErckitError(f"{data.dataset}: split {data.train_split!r} is empty or missing")
    if not splits["dev"]:
        raise ErckitError(f"{data.dataset}: split {data.dev_split!r} is empty or missing; dev selects the best epoch")
    return RecipeData(corpus, chosen, splits, list(corpus.problems))


def encoder_media(encoders: Iterable[Any]) -> tuple[MediaSpec, ...]:
    """The media specs ``encoders`` declare (``.media``), each once, sorted by repr: the order training uses."""
    return tuple(sorted({e.media for e in encoders if getattr(e, "media", None) is not None}, key=repr))


def recipe_media(encoders: Mapping[str, Any], splits: Mapping[str, Sequence[Sample]]) -> dict[str, tuple[MediaSpec, ...]]:
    """Split -> every media spec any of ``encoders`` needs, for each split that has samples.

    ``encoders`` are the recipe's built encoders (name -> encoder with ``.media``);
    a stage decodes a subset of these specs for a subset of these splits, so
    preparing all of them leaves nothing for training to decode.
    """
    specs = encoder_media(encoders.values())
    return {split: specs for split, samples in splits.items() if samples and specs}


def media_resolver(source: Recipe | DataConfig, *, workers: int = 2) -> "MediaResolver":
    """The recipe's decoded-media cache (``data.cache_dir``, checked writable) under its ``media_policy``.

    Preparing and training build their resolver here, so both compute the same
    cache keys in the same directory. ``workers``: decoding threads of ``prepare``.
    """
    from ..data.cache import DiskCache
    from ..data.pipeline import MediaResolver

    data = _data_config(source)
    cache = DiskCache(data.cache_dir)
    cache.ensure_writable()  # now, not when the first entry is written
    return MediaResolver(cache, data.media_policy, workers=workers)


def problem_lines(problems: Sequence[str], limit: int = PROBLEMS_SHOWN) -> list[str]:
    """The first ``limit`` data problems, then one line counting the rest."""
    lines = list(problems[:limit])
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more data problems")
    return lines


__all__ = [
    "PROBLEMS_SHOWN", "RecipeData", "SPLITS", "encoder_media", "load_corpus", "media_resolver",
    "problem_lines", "recipe_media", "recipe_splits", "split_name",
]
