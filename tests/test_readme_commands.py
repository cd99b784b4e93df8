"""Every ``erckit ...`` command the README shows is one the CLI accepts, and its examples work after
the README's quick-start install line (the extras it installs cover what the examples need)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from erckit.cli.main import build_parser, main
from tiny_models import save_model

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`(erckit [^`]+)`")
# What a README example needs beyond the core install: option -> the distribution it imports.
OPTION_NEEDS = {"--plot": "matplotlib"}


def fenced_lines() -> list[str]:
    return [line.strip() for block in FENCE.findall(README) for line in block.splitlines() if line.strip()]


def fenced_commands() -> list[str]:
    """`erckit ...` commands of the fenced blocks, also those after `&&`."""
    return [part.strip() for line in fenced_lines() for part in line.split("&&") if part.strip().startswith("erckit ")]


def inline_commands() -> list[str]:
    """`erckit ...` usage lines in the text and tables; [optional] parts included, as a user would type them."""
    without_fences = FENCE.sub("", README)
    return [command.replace("[", "").replace("]", "") for command in INLINE.findall(without_fences)]


def quickstart_extras() -> set[str]:
    install = next(line for line in fenced_lines() if line.startswith("pip install") and "erckit train" in line)
    extras: set[str] = set()
    for word in shlex.split(install.split("&&")[0]):
        match = re.fullmatch(r"\.\[([a-z,-]+)\]", word)
        if match:
            extras.update(match.group(1).split(","))
    return extras


def test_the_readme_shows_commands() -> None:
    assert len(fenced_commands()) >= 3 and len(inline_commands()) >= 7


@pytest.mark.parametrize("command", fenced_commands() + inline_commands())
def test_every_readme_command_is_accepted_by_the_cli(command: str) -> None:
    parser = build_parser(with_plugins=True)
    try:
        args = parser.parse_args(shlex.split(command)[1:])
    except SystemExit as exit:  # usage error: unknown command or option, missing argument
        pytest.fail(f"README command {command!r} is refused by the CLI (exit {exit.code})")
    assert getattr(args, "run", None) is not None, command


def test_the_quickstart_install_covers_what_the_examples_need() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    installed = quickstart_extras()
    assert installed <= set(extras), f"the README installs extras pyproject.toml does not define: {installed - set(extras)}"
    provided = {re.split(r"[<>=!\[ ;]", requirement, maxsplit=1)[0] for extra in installed for requirement in extras[extra]}
    for command in fenced_commands():
        for option, distribution in OPTION_NEEDS.items():
            if option in shlex.split(command):
                assert distribution in provided, (
                    f"README example {command!r} needs {distribution}, which the quick-start install line "
                    f"(extras {sorted(installed) or 'none'}) does not install"
                )


def test_the_predict_and_evaluate_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The README's own lines, verbatim, in a directory laid out as the quick start leaves it
    (a tiny untrained model stands in for the trained one)."""
    monkeypatch.chdir(tmp_path)
    save_model(tmp_path / "runs" / "quickstart" / "model")
    demo = tmp_path / "data" / "demo"
    demo.mkdir(parents=True)
    (demo / "test.jsonl").write_text(
        '{"id": "t1", "utterances": [{"speaker": "A", "text": "i am so happy", "label": "joy"}, '
        '{"speaker": "B", "text": "whatever", "label": "neutral"}, {"speaker": "A", "text": "stop it", "label": "anger"}]}\n',
        encoding="utf-8",
    )
    examples = [c for c in fenced_commands() if c.split()[1] in ("predict", "evaluate")]
    assert examples, "the README shows no predict/evaluate example"
    for command in examples:
        assert main(shlex.split(command)[1:]) == 0, (command, capsys.readouterr().err)
        if "--plot" in command:
            png = tmp_path / shlex.split(command)[shlex.split(command).index("--plot") + 1]
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
