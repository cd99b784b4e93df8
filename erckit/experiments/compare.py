"""``erckit compare RUN_DIR...``: runs side by side (recipe differences, metrics, throughput), plots, HTML.

A run folder is read back as training left it: recipe.toml, metrics.jsonl (the
erckit.JSONL.v1 logger's rows, one per epoch per stage) and test_report.json. A folder
of seeds or trials (``seed-*``/``trial-*`` run folders inside) stands for its runs.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import ErckitError
from ..fileio import atomic_write_bytes, atomic_write_text
from . import runs

# Fixed figure sizes in inches at a fixed dpi, so a plot's pixel size is known (and tested).
DPI = 100
CURVE_PANEL = (4.0, 3.0)  # one stage's panel; two rows: train loss, dev weighted F1
PER_CLASS = (8.0, 4.5)


@dataclass
class Run:
    name: str
    directory: Path
    recipe: dict[str, Any]
    rows: list[dict[str, Any]]
    report: dict[str, Any] | None
    metrics: dict[str, float] = field(default_factory=dict)


def expand(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "recipe.toml").is_file():
            found.append(path)
            continue
        inner = sorted((p for p in path.glob("*") if (p / "recipe.toml").is_file()), key=_natural) if path.is_dir() else []
        if not inner:
            raise ErckitError(f"{path}: not a run folder (no recipe.toml) and holds none")
        found += inner
    if not found:
        raise ErckitError("compare: name at least one run folder")
    return found


def _natural(path: Path) -> tuple:
    stem, _, number = path.name.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (path.name, -1)


def load_runs(paths: Iterable[Path]) -> list[Run]:
    directories = expand(paths)
    absolute = [d.absolute() for d in directories]
    common = Path(os.path.commonpath([d.parent for d in absolute])) if len(absolute) > 1 else absolute[0].parent
    loaded = []
    for directory, full in zip(directories, absolute):
        rows = runs.read_rows(directory)
        report = runs.test_report(directory) if (directory / "test_report.json").is_file() else None
        metrics = {**runs.selected_dev(rows), **(runs.test_metrics(report) if report else {})}
        epochs = [r for r in runs.epoch_rows(rows) if "train/samples_per_s" in r]
        if epochs:
            metrics["train/samples_per_s"] = sum(r["train/samples_per_s"] for r in epochs) / len(epochs)
        metrics["seconds"] = sum(float(r.get("seconds", 0.0)) for r in rows)
        loaded.append(Run(str(full.relative_to(common)), directory, flatten(runs.read_recipe(directory)), rows, report, metrics))
    return loaded


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys as ``--set`` writes them: stages by name (``stages.teacher.lr``), other lists by index."""
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = value.items()
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = ((str(v.get("name", i)), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, inner in items:
        flat.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def differences(loaded: list[Run]) -> list[str]:
    """Recipe keys whose value is not the same in every run (a key some runs lack counts)."""
    keys = sorted({key for run in loaded for key in run.recipe})
    missing = object()
    return [k for k in keys if len({repr(run.recipe.get(k, missing)) for run in loaded}) > 1]


METRICS = (
    ("test/weighted_f1", "test wF1"), ("test/macro_f1", "test macro F1"), ("test/accuracy", "test acc"),
    ("dev/weighted_f1", "dev wF1"), ("train/samples_per_s", "samples/s"), ("seconds", "seconds"),
)


def table_rows(loaded: list[Run]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, differing keys) shared by the terminal table and the HTML one."""
    keys = differences(loaded)
    header = ["run", *keys, *(label for _, label in METRICS)]
    body = []
    for run in loaded:
        cells = [run.name, *(_show(run.recipe.get(k, "")) for k in keys)]
        for name, _ in METRICS:
            value = run.metrics.get(name)
            cells.append("" if value is None else f"{value:.4f}" if name.startswith(("test/", "dev/")) else f"{value:.2f}")
        body.append(cells)
    return header, body, keys


def _show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value).replace("True", "true").replace("False", "false")


def table(loaded: list[Run]) -> Any:
    from rich.table import Table

    from ..terminal import text

    header, body, keys = table_rows(loaded)
    result = Table(title=f"{len(loaded)} runs" + ("; recipe differences in yellow" if keys else "; same recipe"))
    for index, name in enumerate(header):
        differing = 0 < index <= len(keys)
        result.add_column(text(name), style="yellow" if differing else None, justify="left" if index <= len(keys) else "right")
    for cells in body:
        result.add_row(*(text(c) for c in cells))
    return result


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ErckitError('compare plots need matplotlib: pip install "erckit[plot]"') from None
    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    return plt


def stages_of(loaded: list[Run]) -> list[str]:
    order: list[str] = []
    for run in loaded:
        for row in runs.epoch_rows(run.rows):
            if row["stage"] not in order:
                order.append(row["stage"])
    return order


def plot_curves(loaded: list[Run], path: Path) -> Path:
    """Train loss (top) and dev weighted F1 (bottom) per epoch, one column per stage, one line per run."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    stages = stages_of(loaded) or ["(no epochs)"]
    width, height = CURVE_PANEL
    figure, axes = plt.subplots(2, len(stages), figsize=(width * len(stages), height * 2), dpi=DPI, squeeze=False)
    for column, stage in enumerate(stages):
        for run in loaded:
            epochs = [r for r in runs.epoch_rows(run.rows) if r["stage"] == stage]
            for row_index, key in enumerate(("train/loss", "dev/weighted_f1")):
                points = [(r["epoch"], r[key]) for r in epochs if key in r]
                if points:
                    axes[row_index][column].plot(*zip(*points), marker="o", label=run.name)
        axes[0][column].set_title(stage)
        axes[0][column].set_ylabel("train loss")
        axes[1][column].set_ylabel("dev weighted F1")
        axes[1][column].set_xlabel("epoch")
        for axis in (axes[0][column], axes[1][column]):
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    return _save(figure, path)


def plot_per_class(loaded: list[Run], path: Path) -> Path:
    """Test F1 per class, one bar per run in each class's group."""
    plt = _pyplot()
    labels: list[str] = []
    for run in loaded:
        for entry in (run.report or {}).get("per_class", []):
            if entry["label"] not in labels:
                labels.append(entry["label"])
    figure, axis = plt.subplots(figsize=PER_CLASS, dpi=DPI)
    width = 0.8 / max(len(loaded), 1)
    for index, run in enumerate(loaded):
        scores = {e["label"]: e["f1"] for e in (run.report or {}).get("per_class", [])}
        axis.bar([i + index * width for i in range(len(labels))], [scores.get(label, 0.0) for label in labels],
                 width=width, label=run.name)
    axis.set_xticks([i + width * (len(loaded) - 1) / 2 for i in range(len(labels))], labels)
    axis.set_ylabel("test F1")
    axis.set_ylim(0, 1)
    axis.legend(fontsize="small")
    figure.tight_layout()
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)  # no bbox_inches="tight": it would change the size
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def write_report(loaded: list[Run], out: Path) -> list[Path]:
    """``out`` (HTML) plus its two PNGs beside it; the HTML carries the PNGs inline, so it opens anywhere offline."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ErckitError(f"cannot write the report into {out.parent}: {error.strerror or error}") from None
    curves = plot_curves(loaded, out.with_name(f"{out.stem}_curves.png"))
    per_class = plot_per_class(loaded, out.with_name(f"{out.stem}_per_class_f1.png"))
    header, body, keys = table_rows(loaded)
    differing = set(range(1, len(keys) + 1))
    head = "".join(f"<th{' class=diff' if i in differing else ''}>{html.escape(h)}</th>" for i, h in enumerate(header))
    lines = "".join(
        "<tr>" + "".join(f"<td{' class=diff' if i in differing else ''}>{html.escape(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in body
    )
    images = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" alt="{html.escape(p.name)}">'
        f"<figcaption>{html.escape(caption)} ({html.escape(p.name)})</figcaption></figure>"
        for p, caption in ((curves, "learning curves: train loss and dev weighted F1 per epoch, per stage"),
                           (per_class, "test F1 per class"))
    )
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>erckit compare: {len(loaded)} runs</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.diff{{background:#fff3b0}}img{{max-width:100%}}</style></head>
<body><h1>erckit compare: {len(loaded)} runs</h1>
<p>Highlighted columns: recipe keys that differ between the runs. Test metrics are of each run's dev-selected model.</p>
<table><tr>{head}</tr>{lines}</table>{images}</body></html>
"""
    atomic_write_text(out, page)
    return [out, curves, per_class]
