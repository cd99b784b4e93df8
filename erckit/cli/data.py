"""``erckit data demo|stats|prepare``: make the demo data set, inspect data, fill the media cache."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import DataError, ErckitError
from . import console as ui
from .arguments import positive_int
from .recipe import add_set_option

# erckit.recipe.corpus.SPLITS, spelled out: `erckit --help` does not import the recipe package.
SPLITS = ("train", "dev", "test")

# Options of an older `data prepare` that invented media settings; the recipe's encoders declare them now.
_REMOVED_PREPARE_OPTIONS = {
    "sample_rate": "--sample-rate", "frames": "--frames", "size": "--size", "no_audio": "--no-audio", "no_video": "--no-video",
}


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
    demo.add_argument("--episode", action="store_true",
                      help="also write episode.mp4 + .srt/.vtt: the test split's clips as one long recording")
    demo.set_defaults(run=run_demo)

    stats = commands.add_parser("stats", help="statistics of a JSONL file, a JSONL data set directory or a recipe's data")
    stats.add_argument("source", help="a .jsonl file, a directory of {train,dev,test}.jsonl, or a recipe .toml")
    stats.add_argument("--split", help="only this split (default: all)")
    stats.add_argument("--no-probe", action="store_true", help="skip reading media headers for durations")
    add_set_option(stats)
    stats.set_defaults(run=run_stats)

    prepare = commands.add_parser(
        "prepare", help="decode the media a recipe's encoders need into its cache, ahead of training",
        description="Decode every medium the recipe's encoders declare (their sample rate, frames, size) for its "
        "train, dev and test splits into data.cache_dir, under data.media_policy: afterwards `erckit train` "
        "with the same recipe and --set options decodes nothing.",
    )
    prepare.add_argument("recipe", help="recipe .toml")
    add_set_option(prepare)
    prepare.add_argument("--workers", type=positive_int, default=2, metavar="N", help="decoding threads (default 2)")
    prepare.add_argument("--split", action="append", choices=SPLITS,
                         help="only this split (repeatable; default: train, dev and test)")
    for dest, flag in _REMOVED_PREPARE_OPTIONS.items():
        prepare.add_argument(flag, dest=dest, nargs="?", const=True, default=None, help=argparse.SUPPRESS)
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
    if args.episode:
        from ..data.demo import write_episode

        episode = write_episode(summary.root)
        ui.console.print(f"[green]wrote[/] {ui.escape(episode.video)} ({episode.seconds:.0f} s, {episode.cues} cues) "
                         f"with {ui.escape(episode.subtitles['srt'].name)}, {ui.escape(episode.subtitles['vtt'].name)} "
                         f"and {ui.escape(episode.dialogues.name)}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from ..data.stats import compute_stats, render_stats

    labels, splits, problems = _read_source(Path(args.source), args.overrides)
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
    from ..model import ERCModel
    from ..recipe import load_recipe
    from ..recipe.corpus import media_resolver, problem_lines, recipe_media, recipe_splits

    removed = [flag for dest, flag in _REMOVED_PREPARE_OPTIONS.items() if getattr(args, dest, None) is not None]
    if removed:
        raise ErckitError(
            f"{', '.join(removed)}: no longer options of `erckit data prepare`; the recipe's encoders declare the "
            "media they need (set them in the recipe or with --set, e.g. --set model.encoders.visual.frames=4), "
            "so prepare fills exactly what training reads"
        )
    recipe = load_recipe(args.recipe, args.overrides)
    data = recipe_splits(recipe)
    # The encoders themselves say what they decode (a pretrained one reads its sizes from its config).
    encoders = ERCModel.from_recipe(recipe, data.labels).encoders
    plan = recipe_media(encoders, data.splits)
    if args.split:
        plan = {split: specs for split, specs in plan.items() if split in args.split}
    for line in problem_lines(data.problems):
        ui.warning(line)
    if not plan:
        ui.console.print("nothing to prepare: no encoder of the recipe needs decoded media"
                         if not any(e.media for e in encoders.values()) else "nothing to prepare in the chosen splits")
        return 0
    resolver = media_resolver(recipe, workers=args.workers)
    decoded = cached = 0
    for split, specs in plan.items():
        samples = data.splits[split]
        ui.console.print(f"[bold]{split}[/]: media of {len(samples)} utterances "
                         f"({ui.escape(', '.join(map(repr, specs)))}) into {ui.escape(resolver.cache.root)}")
        report = resolver.prepare(samples, specs, progress=True, console=ui.console)
        ui.out.print(report.render())
        decoded, cached = decoded + report.decoded, cached + report.cached
    ui.console.print(f"prepared {decoded + cached} media: {decoded} decoded now, {cached} already in the cache")
    return 0


def _read_source(source: Path, overrides: list[str] = ()) -> tuple[tuple[str, ...], dict[str, Any], list[str]]:
    """(labels, split name -> loader, problems) for a JSONL file, a JSONL directory or a recipe."""
    from ..data.readers import read_dialogue_jsonl, read_jsonl_dataset

    if not source.exists():
        raise DataError(f"{source}: no such file or directory")
    if source.is_dir():
        corpus = read_jsonl_dataset(source)
        labels = corpus.labels
    elif source.suffix == ".toml":
        from ..recipe import load_recipe
        from ..recipe.corpus import load_corpus

        recipe = load_recipe(source, overrides)
        corpus = load_corpus(recipe)
        labels = tuple(recipe.data.labels or corpus.labels)  # the classes training would use
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
    return labels, loaders, corpus.problems
