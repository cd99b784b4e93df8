"""Import contracts: layers point down, no cycles, plugins use only the public API (pyproject.toml)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ROOTS = (ROOT / "plugins" / "telme", ROOT / "plugins" / "example")


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    return {contract["name"]: contract for contract in config["contracts"]}


def contract(starting: str) -> dict:
    (found,) = [c for name, c in contracts().items() if name.startswith(starting)]
    return found


def layer_modules() -> list[list[str]]:
    """The layers contract's layers, top first, each as its modules' full names."""
    layers = contract("erckit is layered")
    return [
        [f"erckit.{part.strip().strip('()')}" for part in re.split(r"[|:]", layer)]
        for layer in layers["layers"]
    ]


def test_import_contracts_hold():
    pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[test]')")
    # This tree's erckit and plugins, not whatever copies are installed: lint-imports puts the
    # working directory first on sys.path, and the plugins' source folders come next.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *map(str, PLUGIN_ROOTS), *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command(['--no-cache'])"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"lint-imports found broken contracts:\n{result.stdout}\n{result.stderr}"
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout, result.stdout


def test_the_cli_contract_covers_every_other_module():
    everything = {module for layer in layer_modules() for module in layer}
    sources = set(contract("Nothing in erckit outside the CLI")["source_modules"])
    assert sources == everything - {"erckit.__main__", "erckit.cli"}


def test_the_data_contract_forbids_every_layer_above_data():
    layers = layer_modules()
    above = {module for layer in layers[: layers.index(["erckit.data"])] for module in layer}
    forbidden = set(contract("erckit.data imports nothing above it")["forbidden_modules"])
    assert forbidden == above - {"erckit.__main__"}


def test_the_documented_public_api_is_the_one_the_contract_allows():
    plugins_contract = contract("Plugins import only erckit's public modules")
    allowed = {expression.split("->")[1].strip() for expression in plugins_contract["ignore_imports"]}
    assert all(expression.startswith("** -> ") for expression in plugins_contract["ignore_imports"])
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split("## Public API", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", section, flags=re.MULTILINE))
    assert documented == allowed
