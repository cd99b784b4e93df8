"""Tiny models of every built-in and TelME component shape, exported once per session, and demo dialogues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'erckit[onnx]'")

from export_models import LABELS, RECIPES  # noqa: E402
from tiny_models import build_model  # noqa: E402


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three demo dialogues with their wav and mp4 media (a few with audio or video absent)."""
    from erckit.data.demo import write_demo

    root = tmp_path_factory.mktemp("demo")
    write_demo(root, seed=3, dialogues={"train": 1, "dev": 0, "test": 3})
    return root


@pytest.fixture(scope="session")
def dialogues(demo: Path) -> list[Any]:
    from erckit.data.readers.jsonl import read_dialogue_jsonl

    return read_dialogue_jsonl(demo / "test.jsonl", LABELS)


@pytest.fixture(scope="session")
def models() -> dict[str, Any]:
    return {name: build_model(recipe(), LABELS, seed=1) for name, recipe in RECIPES.items()}


@pytest.fixture(scope="session")
def exported(models: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each model's fp32 export (exported on first use, once per session)."""
    from erckit.export.graphs import export_model

    root = tmp_path_factory.mktemp("exports")

    class Exports(dict):
        def __missing__(self, name: str) -> Path:
            self[name] = export_model(models[name], root / name)
            return self[name]

    return Exports()
