"""`erckit --help` and recipe validation stay light: no torch (nor other heavy libraries) imported.

Each check runs in a fresh interpreter, since this test process has torch loaded already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "torchaudio", "transformers", "timm", "av", "starlette", "uvicorn")

RECIPE = """\
[data]
dataset = "erckit.Demo.v1"
root = "demo"

[model.encoders.text]
factory = "telme.RobertaTeacher.v1"
pretrained = "roberta-large"

[model.encoders.audio]
factory = "telme.AudioStudent.v1"

[model.encoders.visual]
factory = "telme.VisualStudent.v1"

[model.encoders.bow]
factory = "example.BagOfWords.v1"

[model.fuser]
factory = "telme.ASF.v1"

[[stages]]
name = "teacher"
kind = "supervised"
encoders = ["text", "bow"]

[[stages]]
kind = "distill"
teacher = "text"
students = ["audio", "visual"]
losses = [{ factory = "telme.ResponseKD.v1" }, { factory = "telme.FeatureKD.v1" }, { factory = "erckit.KLDistill.v1" }]

[[stages]]
kind = "fuse"
"""


def heavy_modules_after(*commands: list[str]) -> list[tuple[list[str], int, list[str]]]:
    """Run ``main(argv)`` for each command in one fresh interpreter; heavy modules loaded after each.

    Modules only accumulate, so a command reported clean had imported nothing heavy by then.
    """
    code = (
        "import sys\n"
        "from erckit.cli.main import main\n"
        f"for argv in {list(commands)!r}:\n"
        "    try:\n        code = main(argv)\n"
        "    except SystemExit as exit:\n        code = exit.code\n"
        f"    heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "    print('RESULT', code or 0, ','.join(heavy), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, COLUMNS="200"))
    lines = [line.split(" ") for line in result.stderr.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == len(commands), result.stderr
    return [(argv, int(line[1]), [m for m in line[2].split(",") if m]) for argv, line in zip(commands, lines)]


def assert_light(results, expected_code: int = 0) -> None:
    for argv, code, heavy in results:
        assert code == expected_code, f"erckit {' '.join(argv)} exited {code}"
        assert heavy == [], f"erckit {' '.join(argv)} imported {heavy}"


def test_help_does_not_import_torch():
    assert_light(heavy_modules_after(["--help"], ["--version"], ["recipe", "--help"], ["train", "--help"], ["serve", "--help"]))


def test_recipe_check_does_not_import_torch(tmp_path: Path):
    """Every plugin's factories are looked up and their signatures checked, without torch."""
    path = tmp_path / "all.toml"
    path.write_text(RECIPE)
    bad = tmp_path / "bad.toml"
    bad.write_text(RECIPE.replace("telme.ASF.v1", "telme.ASF.v7"))
    assert_light(heavy_modules_after(["recipe", "check", str(path)]))
    assert_light(heavy_modules_after(["recipe", "check", str(bad)]), expected_code=1)


def test_recipe_show_and_listing_commands_do_not_import_torch(tmp_path: Path):
    path = tmp_path / "all.toml"
    path.write_text(RECIPE)
    assert_light(heavy_modules_after(["recipe", "show", str(path)], ["components"], ["plugins"]))


def test_importing_erckit_and_the_recipe_api_does_not_import_torch():
    code = (
        "import sys, erckit, erckit.registry, erckit.plugins, erckit.recipe\n"
        "from erckit.recipe import load_recipe\n"
        "erckit.plugins.load_plugins()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
