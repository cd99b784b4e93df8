"""Run directories: --overwrite empties only what erckit made, one run at a time, no resume dead end.

Issue 14 items 1-2, issue 13 item 7. The lock tests use real processes: a real
``erckit train`` stalled before its first checkpoint holds the directory, a second
``erckit train`` is refused naming its pid, and after a SIGKILL of the first the
directory is usable again (``--resume`` starts the run from the beginning).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from erckit.cli.main import main
from erckit.errors import ErckitError
from erckit.train.rundir import MARKER

from .conftest import TEXT, read_metrics, run_training, stage

VOLATILE = ("seconds", "train/samples_per_s")


def _stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


@pytest.fixture
def recipe(make_recipe) -> Any:
    return make_recipe(stage("supervised", encoders=["text"], epochs=2, lr=0.01), encoders=TEXT, fuser=False)


@pytest.fixture
def recipe_file(recipe: Any, tmp_path: Path) -> Path:
    return tmp_path / "recipe.toml"  # written by make_recipe


def _train_args(recipe_file: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(recipe_file), "-o", str(out), "--device", "cpu", "--no-progress", *extra]


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------- --overwrite


def test_overwrite_refuses_a_directory_erckit_did_not_make(recipe_file: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "thesis"
    (folder / "photos").mkdir(parents=True)
    (folder / "thesis.txt").write_text("four years of work")
    (folder / "photos" / "a.jpg").write_bytes(b"\xff\xd8")
    assert main(_train_args(recipe_file, folder, "--overwrite")) == 1
    message = _one_line_error(capsys)
    assert "--overwrite refused" in message and "not made by erckit" in message
    assert "thesis.txt" in message and "photos/" in message
    assert (folder / "thesis.txt").read_text() == "four years of work" and (folder / "photos" / "a.jpg").exists()
    assert not (folder / MARKER).exists()  # not claimed either


def test_overwrite_starts_a_finished_run_again(recipe: Any, recipe_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = read_metrics(run_training(recipe, out).run_dir)
    (out / "notes.txt").write_text("inside an erckit run directory: removed with it")
    assert main(_train_args(recipe_file, out, "--overwrite")) == 0
    assert not (out / "notes.txt").exists()
    assert _stable(read_metrics(out)) == _stable(first)  # a clean run, not appended to the old one


@pytest.mark.parametrize("where", ["home", "cwd", "parent of cwd"])
def test_overwrite_never_empties_home_or_the_current_directory(
    recipe: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, where: str
) -> None:
    marked = tmp_path / "marked"
    (marked / "inner").mkdir(parents=True)
    (marked / MARKER).write_text("")  # even a directory that says erckit made it
    (marked / "keep.txt").write_text("x")
    if where == "home":
        monkeypatch.setenv("HOME", str(marked))
    else:
        monkeypatch.chdir(marked if where == "cwd" else marked / "inner")
    with pytest.raises(ErckitError, match="--overwrite refused: .* is (your home|the current|a parent of the current) directory"):
        run_training(recipe, marked, overwrite=True)
    assert (marked / "keep.txt").exists() and (marked / "inner").is_dir()


# ------------------------------------------------------ stopped before a checkpoint


def _stop_before_first_checkpoint(recipe: Any, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupt after epoch 1's metrics row is written and before its checkpoint: no checkpoint at all."""
    from erckit.train import engine

    with monkeypatch.context() as patch:
        def interrupt(self: Any, *args: Any) -> None:
            raise KeyboardInterrupt

        patch.setattr(engine.Trainer, "save_checkpoint", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_training(recipe, out)
    assert (out / MARKER).is_file() and len(read_metrics(out)) == 1 and not (out / "checkpoints").exists()


@pytest.mark.parametrize("how", ["plain start", "--resume"])
def test_a_run_stopped_before_its_first_checkpoint_starts_again(
    recipe: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, how: str
) -> None:
    fresh = read_metrics(run_training(recipe, tmp_path / "fresh").run_dir)
    out = tmp_path / "run"
    _stop_before_first_checkpoint(recipe, out, monkeypatch)
    capsys.readouterr()
    run_training(recipe, out, resume=how == "--resume")
    assert "stopped before its first checkpoint; starting it from the beginning" in capsys.readouterr().err
    assert _stable(read_metrics(out)) == _stable(fresh)  # the stale epoch-1 row is gone


def test_a_finished_run_is_not_restarted_by_a_plain_start(recipe: Any, tmp_path: Path) -> None:
    out = run_training(recipe, tmp_path / "run").run_dir
    rows = read_metrics(out)
    with pytest.raises(ErckitError, match="already exists; pass --resume .* or --overwrite"):
        run_training(recipe, out)  # the lock of the finished run was released: "exists", not "in use"
    assert read_metrics(out) == rows


def test_resume_into_an_empty_or_foreign_directory_is_refused(recipe: Any, tmp_path: Path) -> None:
    with pytest.raises(ErckitError, match="--resume: no run in"):
        run_training(recipe, tmp_path / "nothing", resume=True)
    assert not (tmp_path / "nothing").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("a,b\n")
    with pytest.raises(ErckitError, match="not made by erckit .*data.csv"):
        run_training(recipe, foreign, resume=True)
    assert [p.name for p in foreign.iterdir()] == ["data.csv"]


# -------------------------------------------------------------------- the lock

# A real `erckit train` that stalls in on_train_start (before any checkpoint) until killed.
STALLED_TRAINING = """
import sys, time
import erckit
from erckit.cli.main import main
from erckit.plugins import get_plugin_manager

class Stall:
    @erckit.hookimpl
    def on_train_start(self, run):
        print("training", flush=True)
        time.sleep(600)

get_plugin_manager().register(Stall(), name="stall")
sys.exit(main(sys.argv[1:]))
"""


def _wait_for_line(process: subprocess.Popen, expected: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if expected in line:
            return
        if not line and process.poll() is not None:
            raise AssertionError(f"process ended ({process.returncode}): {process.stderr.read()}")
    raise AssertionError(f"no {expected!r} within {timeout} s")


@pytest.mark.slow
def test_second_run_is_refused_while_the_first_lives_and_accepted_after_sigkill(
    recipe: Any, recipe_file: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", STALLED_TRAINING, *_train_args(recipe_file, out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        _wait_for_line(holder, "training")
        second = subprocess.run(
            [sys.executable, "-m", "erckit", *_train_args(recipe_file, out)],
            capture_output=True, text=True, env=env, timeout=300,
        )
        assert second.returncode == 1
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"is in use by another erckit run (pid {holder.pid} " in lines[0]
        # in-process too, with every way in: plain, --resume, --overwrite
        for options in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(ErckitError, match=f"in use by another erckit run \\(pid {holder.pid} "):
                run_training(recipe, out, **options)
        assert (out / "recipe.toml").is_file()  # the holder's files were not touched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    capsys.readouterr()
    result = run_training(recipe, out, resume=True)  # the dead run's lock went with it
    assert "starting it from the beginning" in capsys.readouterr().err
    assert [r["epoch"] for r in read_metrics(result.run_dir) if r["stage"] != "final"] == [1, 2]
