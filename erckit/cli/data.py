"""``erckit data demo|stats|prepare``: make the demo data set, inspect data, fill the media cache."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import DataError, ErckitError
from . import console as ui

# [data] keys that configure erckit rather than the dataset factory.
RESERVED_DATA_KEYS = frozenset(
    {"dataset", "labels", "media_policy", "cache_dir", "max_context", "num_workers",
     "train_split", "dev_split", "test_split", "max_audio_seconds"}
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="make the demo data set, show statistics, prepare the media cache",
        description="Data utilities: make the demo data set, show statistics, prepare the media cache.",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(parser))

    demo = commands.add_parser("demo", help="write the synthetic multimodal demo data set")
    demo.add_argument("out_dir", help="directory to write (created)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    demo.add_argument(
        "--dialogues", type=int, nargs=3, metavar=("TRAIN", "DEV", "TEST"), default=(60, 15, 20),
        help="dialogues per split (default: 60 15 20)",
    )
    demo.set_defaults(run=run_demo)

    stats = commands.add_parser("stats", help="statistics of a JSONL file, a JSONL data set directory or a recipe's data")
    stats.add_argument("source", help="a .jsonl file, a directory of {train,dev,test}.jsonl, or a recipe .toml")
    stats.add_argument("--split", help="only this split (default: all)")
    stats.add_argument("--no-probe", action="store_true", help="skip reading media headers for durations")
    stats.set_defaults(run=run_stats)

    prepare = commands.add_parser("prepare", help="decode a recipe's media into the cache ahead of training")
    prepare.add_argument("recipe", help="recipe .toml")
    prepare.add_argument("--sample-rate", type=int, default=16_000, help="audio sample rate (default 16000)")
    prepare.add_argument("--frames", type=int, default=8, help="video frames per utterance (default 8)")
    prepare.add_argument("--size", type=int, default=224, help="shorter side of frames in pixels (default 224)")
    prepare.add_argument("--no-audio", action="store_true", help="do not decode audio")
    prepare.add_argument("--no-video", action="store_true", help="do not decode video")
    prepare.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    prepare.add_argument("--split", action="append", help="only these splits (repeatable; default: all)")
    prepare.set_defaults(run=run_prepare)
    parser.set_defaults(run=lambda args: parser.print_help() or 0)


def run_demo(args: argparse.Namespace) -> int:
    from ..data.demo import write_demo

    summary = write_demo(args.out_dir, seed=args.seed, dialogues=dict(zip(("train", "dev", "test"), args.dialogues)))
    splits = ", ".join(f"{s} {summary.dialogues[s]} dialogues / {summary.utterances[s]} utterances" for s in summary.dialogues)
    labels = ", ".join(f"{label} {count}" for label, count in summary.labels.items())
    ui.console.print(f"[green]wrote[/] demo data set (seed {args.seed}) to {ui.escape(summary.root)} in {summary.seconds:.1f} s")
    ui.console.print(f"  {splits}")
    ui.console.print(f"  labels: {labels}; ambiguous text: {summary.ambiguous}; "
                     f"without audio: {summary.without_audio}; without video: {summary.without_video}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from ..data.stats import compute_stats, render_stats

    labels, splits, problems = _read_source(Path(args.source))
    if args.split is not None:
        if args.split not in splits:
            raise DataError(f"no split {args.split!r} in {args.source}; available: {', '.join(splits)}")
        splits = {args.split: splits[args.split]}
    stats = [compute_stats(name, load(), probe=not args.no_probe) for name, load in splits.items()]
    ui.print_whole(render_stats(stats, labels))
    for problem in problems:
        ui.warning(problem)
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from ..data.cache import DiskCache
    from ..data.pipeline import MediaResolver
    from ..data.types import AudioSpec, VideoSpec, make_samples

    config = _recipe_data(Path(args.recipe))
    corpus = _corpus(config)
    specs: list[Any] = []
    if not args.no_audio:
        specs.append(AudioSpec(sample_rate=args.sample_rate, max_seconds=config.get("max_audio_seconds")))
    if not args.no_video:
        specs.append(VideoSpec(num_frames=args.frames, size=args.size))
    if not specs:
        raise ErckitError("nothing to prepare: both --no-audio and --no-video given")
    names = args.split or [n for n in (config.get("train_split", "train"), config.get("dev_split", "dev"),
                                        config.get("test_split", "test")) if n in corpus.splits]
    samples = [s for name in names for s in make_samples(corpus.split(name), corpus.labels)]
    cache = DiskCache(config.get("cache_dir") or ".erckit-cache")
    resolver = MediaResolver(cache, config.get("media_policy") or "error", workers=args.workers)
    ui.console.print(f"preparing media of {len(samples)} utterances ({ui.escape(', '.join(names))}) into {ui.escape(cache.root)}")
    report = resolver.prepare(samples, specs, progress=True, console=ui.console)
    ui.out.print(report.render())
    for problem in corpus.problems:
        ui.warning(problem)
    return 0


def _read_source(source: Path) -> tuple[tuple[str, ...], dict[str, Any], list[str]]:
    """(labels, split name -> loader, problems) for a JSONL file, a JSONL directory or a recipe."""
    from ..data.readers import read_dialogue_jsonl, read_jsonl_dataset

    if not source.exists():
        raise DataError(f"{source}: no such file or directory")
    if source.is_dir():
        corpus = read_jsonl_dataset(source)
    elif source.suffix == ".toml":
        corpus = _corpus(_recipe_data(source))
    elif source.suffix == ".jsonl":
        problems: list[str] = []
        dialogues = read_dialogue_jsonl(source, None, problems)
        labels_file = source.parent / "labels.json"
        if labels_file.is_file():
            import json

            labels = tuple(json.loads(labels_file.read_text(encoding="utf-8")))
        else:
            labels = tuple(sorted({u.label for d in dialogues for u in d.utterances if u.label is not None}))
        return labels, {source.stem: lambda: dialogues}, problems
    else:
        raise DataError(f"{source}: expected a .jsonl file, a directory of .jsonl splits, or a recipe .toml")
    # Read the splits now so their problems are known before printing.
    loaders = {name: (lambda n=name: corpus.split(n)) for name in corpus.splits}
    for load in loaders.values():
        load()
    return corpus.labels, loaders, corpus.problems


def _recipe_data(path: Path) -> dict[str, Any]:
    """The recipe's ``[data]`` table as a plain dict (validated by the recipe loader when present)."""
    try:
        from ..recipe import load_recipe
    except ImportError:  # the recipe package is optional for this command
        load_recipe = None  # type: ignore[assignment]
    if load_recipe is not None:
        recipe = load_recipe(path)
        data = recipe.data.model_dump()
        data.update(recipe.data.args)
        return data
    import tomllib

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ErckitError(f"recipe file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ErckitError(f"{path}: TOML syntax error: {error}") from None
    data = raw.get("data")
    if not isinstance(data, dict) or "dataset" not in data:
        raise ErckitError(f"{path}: the recipe has no [data] table with a 'dataset' key")
    return data


def _corpus(data: dict[str, Any]) -> Any:
    from ..registry import datasets

    factory = datasets.get(data["dataset"])
    kwargs = {k: v for k, v in data.items() if k not in RESERVED_DATA_KEYS}
    if data.get("labels") is not None:
        kwargs["labels"] = data["labels"]
    return factory(**kwargs)
