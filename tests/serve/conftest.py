"""Fixtures of the serve tests: a saved tiny model and a server for it (see live_server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("websockets")

from live_server import context_recipe, running  # noqa: E402
from tiny_models import save_model  # noqa: E402


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text model whose prediction depends on the context (bag of words over it), context cut to 2."""
    return save_model(tmp_path_factory.mktemp("serve-model") / "m", context_recipe(2))


@pytest.fixture(scope="session")
def server(model_dir: Path) -> Iterator[str]:
    with running(model_dir) as url:
        yield url
