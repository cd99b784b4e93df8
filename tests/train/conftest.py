"""Shared fixtures for the training-engine tests: a small demo data set and recipe builders.

The demo is generated once per session (a reduced-size ``write_demo``) and read
through ``erckit.DialogueJSONL.v1``; each test gets its own cache directory so
cache hits and misses are the test's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SMALL_DEMO = {"train": 16, "dev": 6, "test": 6}

# Tiny components: the engine is under test, not the models.
TEXT = '[model.encoders.text]\nfactory = "example.BagOfWords.v1"\nbuckets = 128\ndim = 16\n'
CTX = '[model.encoders.ctx]\nfactory = "example.BagOfWords.v1"\nbuckets = 128\ndim = 16\ncontext = true\n'
AUDIO = (
    '[model.encoders.audio]\nfactory = "erckit.LogMelAudio.v1"\n'
    "n_mels = 16\ndim = 16\nlayers = 1\nheads = 2\nmax_seconds = 2.0\n"
)
FUSER = '[model.fuser]\nfactory = "erckit.ConcatFuser.v1"\n'


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from erckit.data.demo import write_demo

    root = tmp_path_factory.mktemp("demo") / "small"
    write_demo(root, seed=0, dialogues=dict(SMALL_DEMO))
    return root


def stage(kind: str, **fields: Any) -> str:
    lines = ["[[stages]]", f'kind = "{kind}"']
    for key, value in fields.items():
        lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def write_recipe(
    path: Path,
    demo_root: Path,
    cache_dir: Path,
    encoders: str,
    stages: str,
    *,
    fuser: bool = True,
    seed: int = 0,
    extra: str = "",
) -> Path:
    text = (
        f"seed = {seed}\n{extra}\n[data]\n"
        f'dataset = "erckit.DialogueJSONL.v1"\nroot = {json.dumps(str(demo_root))}\n'
        f'media_policy = "zero"\ncache_dir = {json.dumps(str(cache_dir))}\n\n'
        f"{encoders}\n{FUSER if fuser else ''}\n{stages}"
    )
    path.write_text(text, encoding="utf-8")
    return path


def text_stages(epochs: int = 2, **fields: Any) -> str:
    """supervised(text) -> distill(text -> ctx) -> fuse, all media-free (fast)."""
    common = {"epochs": epochs, "lr": 0.01, "batch_size": 8, **fields}
    return (
        stage("supervised", name="teacher", encoders=["text"], **common)
        + stage("distill", name="students", teacher="text", students=["ctx"], losses=[{"factory": "erckit.KLDistill.v1"}], **common)
        + stage("fuse", name="fusion", **common)
    )


@pytest.fixture
def make_recipe(tmp_path: Path, demo_root: Path):
    """``make_recipe(stages=..., encoders=..., **kw) -> Recipe`` (also written to tmp_path/recipe.toml)."""
    from erckit.recipe import load_recipe

    def make(stages: str | None = None, encoders: str = TEXT + CTX, overrides: tuple[str, ...] = (), name: str = "recipe", **kw: Any):
        path = write_recipe(tmp_path / f"{name}.toml", demo_root, tmp_path / "cache", encoders, stages or text_stages(), **kw)
        return load_recipe(path, list(overrides))

    return make


def run_training(recipe: Any, output: Path, **options: Any):
    from erckit.train import TrainOptions, train

    options.setdefault("device", "cpu")
    options.setdefault("progress", False)
    return train(recipe, "recipe", TrainOptions(output=output, **options))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
