"""The README's test command is exactly what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for block in FENCE.findall(readme)
        for line in block.splitlines()
        if line.strip().startswith("pip install") and "pytest" in line
    ]
    assert len(commands) == 1, f"expected one fenced 'pip install ... pytest' command in README.md, found {commands}"
    return commands[0]


def ci_last_command() -> str:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands, ".ci/run has no command"
    return commands[-1]


def test_readme_test_command_is_the_ci_command():
    assert readme_test_command() == ci_last_command()


def test_ci_script_is_executable_and_strict():
    script = ROOT / ".ci" / "run"
    assert script.stat().st_mode & 0o111, ".ci/run is not executable"
    text = script.read_text(encoding="utf-8")
    assert text.startswith("#!"), ".ci/run needs a shebang"
    assert "set -e" in text, ".ci/run must stop at the first failing command"
