"""The hand-run benchmark scripts import and answer ``--help`` (no training, no data)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MINE = ("bench.meld_text", "bench.meld_text_baseline", "bench.run")
OTHERS = ("bench.data", "bench.train", "bench.predict", "bench.context", "bench.telme_tokens", "bench.serve", "bench.episode", "bench.onnx")  # written alongside; skipped until they exist


def _help(module, capsys, monkeypatch) -> str:
    monkeypatch.setattr(sys, "argv", [module.__name__, "--help"])
    main = module.main
    with pytest.raises(SystemExit) as exit_:
        main(["--help"]) if main.__code__.co_argcount else main()
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", MINE)
def test_help(name, capsys, monkeypatch):
    out = _help(importlib.import_module(name), capsys, monkeypatch)
    assert "usage:" in out


@pytest.mark.parametrize("name", OTHERS)
def test_suite_modules_help(name, capsys, monkeypatch):
    if not (REPO / (name.replace(".", "/") + ".py")).exists():
        pytest.skip(f"{name} not written yet")
    module = importlib.import_module(name)
    if not hasattr(module, "main"):
        pytest.skip(f"{name} has no main()")
    assert "usage:" in _help(module, capsys, monkeypatch)


def test_meld_text_options(capsys, monkeypatch):
    out = _help(importlib.import_module("bench.meld_text"), capsys, monkeypatch)
    for option in ("--context-tokens", "--epochs", "--limit-train", "--baseline"):
        assert option in out


def test_python_dash_m_bench_entry_point():
    source = (REPO / "bench" / "__main__.py").read_text()
    assert "from .run import main" in source


def test_recipe_validates_without_model_or_data():
    from erckit.recipe import load_recipe

    recipe = load_recipe(REPO / "recipes" / "meld_text_minilm.toml")
    text = recipe.model.encoders["text"]
    assert text.factory == "telme.RobertaTeacher.v1"
    assert text.args["max_length"] == 128
    stage = recipe.stages[0]
    assert (stage.kind, stage.batch_size, stage.optimizer.args["lr"], stage.epochs, stage.optimizer.factory) == (
        "erckit.Supervised.v1", 16, 5e-5, 3, "erckit.AdamW.v1"
    )
