"""Every recipe under recipes/ validates (no weights loaded) and says how to run it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from erckit.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.toml"))
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def test_there_are_shipped_recipes():
    assert RECIPES, "recipes/*.toml is empty"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_validates_with_variable_defaults(path: Path, monkeypatch: pytest.MonkeyPatch):
    text = path.read_text(encoding="utf-8")
    for name, default in VARIABLE.findall(text):
        assert default, f"{path.name}: ${{{name}}} has no default; write ${{{name}:-default}}"
        monkeypatch.delenv(name, raising=False)  # validate with the default
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(path)  # resolves every factory and checks its table, without building it
    assert recipe.stages


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_starts_with_the_command_that_runs_it(path: Path):
    from erckit.cli.main import build_parser

    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# erckit "), f"{path.name}: first line must be e.g. '# erckit train recipes/{path.name}'"
    argv = shlex.split(first[len("# erckit "):])
    assert f"recipes/{path.name}" in argv, f"{path.name}: the command must name the recipe itself: {first}"
    build_parser(with_plugins=False).parse_args(argv)  # a real erckit command line (SystemExit(2) if not)
