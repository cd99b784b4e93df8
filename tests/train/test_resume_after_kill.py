"""A real ``erckit train`` process, SIGKILLed inside each stage kind and resumed, ends as an
uninterrupted run does: the same metrics.jsonl rows, test_report.json and model.safetensors.

The quick-start recipe (TelME's real multimodal components: RoBERTa teacher, data2vec-audio and
TimeSformer students, ASF fuser) runs at toy size on a few demo dialogues. One uninterrupted run is
the reference; it runs in the background, beside the killed run. That run is killed once a
checkpoint after epoch 1 of the teacher (supervised) stage exists, resumed, killed again inside the
students (distill) stage, resumed, killed inside the fusion (fuse) stage, and resumed to the end:
one chain instead of three separate runs saves two runs and most of five process start-ups (each
~10 s of importing torch and transformers). Each kill is followed by a check of the rows written so
far against the reference, so a failure names the resume that went wrong: the rows written before
kill N+1 are what resume N produced.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"
STAGES = ("teacher", "students", "fusion")  # supervised, distill, fuse
# Stages that are cheap per epoch get more of them: the kill must land while the latest
# checkpoint is inside the stage (after epoch 1, before the stage ends), and a tiny epoch
# is over in milliseconds.
EPOCHS = {"teacher": 3, "students": 2, "fusion": 6}
DIALOGUES = {"train": 2, "dev": 1, "test": 1}
OVERRIDES = (
    *(f"data.{split}_dialogues={count}" for split, count in DIALOGUES.items()),
    "model.encoders.audio.max_seconds=0.5", "model.encoders.visual.frames=2",
    "model.encoders.visual.config.image_size=32",
    *(f"stages.{name}.epochs={epochs}" for name, epochs in EPOCHS.items()),
)
# Wall-clock measurements, the only fields of a row that differ between two identical runs.
TIMING = ("seconds", "train/samples_per_s")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from erckit.data.demo import ensure_demo

    workspace = tmp_path_factory.mktemp("resume-kill")
    # Written before the two runs start, so they do not race to generate it.
    ensure_demo(workspace / "demo", 0, dialogues=DIALOGUES)
    return workspace


def _command(workspace: Path, out: Path, *extra: str) -> list[str]:
    # One thread each: the reference and the killed run share the CPU as they run side by side.
    command = [sys.executable, "-m", "erckit", "train", str(RECIPE), "-o", str(out)]
    command += ["--device", "cpu", "--threads", "1", "--no-progress"]
    # Each run keeps its own cache (a resumed run reuses the cache of the run it resumes).
    for override in (*OVERRIDES, f'data.cache_dir="{out.with_name(out.name + "-cache")}"'):
        command += ["--set", override]
    return [*command, *extra]


def _env(workspace: Path) -> dict[str, str]:
    return {**os.environ, "DEMO_ROOT": str(workspace / "demo")}


def _start(workspace: Path, out: Path, *extra: str) -> subprocess.Popen:
    with open(out.with_suffix(".log"), "a") as log:
        return subprocess.Popen(_command(workspace, out, *extra), env=_env(workspace), cwd=workspace, stdout=log, stderr=log)


def _finish(process: subprocess.Popen, out: Path) -> Path:
    assert process.wait() == 0, out.with_suffix(".log").read_text()[-3000:]
    return out


def _latest(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / "checkpoints" / "latest" / "state.json").read_text())
    except (OSError, ValueError):  # not written yet, or being replaced right now
        return None


def _kill_inside(workspace: Path, out: Path, stage: str, *extra: str) -> None:
    """Start (or resume) the run and SIGKILL it once a checkpoint after epoch >= 1 of ``stage`` exists."""
    index = STAGES.index(stage)
    process = _start(workspace, out, *extra)
    try:
        while True:
            state = _latest(out)
            if state is not None and state["stage_index"] == index and state["epoch"] >= 1:
                break
            assert process.poll() is None, f"the run ended before {stage} epoch 1:\n{out.with_suffix('.log').read_text()[-3000:]}"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()  # only if an assertion above left it running
        process.wait()
    assert process.returncode == -signal.SIGKILL
    state = _latest(out)
    assert state is not None and state["stage_index"] == index and 1 <= state["epoch"] < EPOCHS[stage], (
        f"the kill meant for {stage} landed at stage {state and state['stage_index']} epoch {state and state['epoch']}"
    )


def _rows(out: Path) -> list[dict[str, Any]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines if line.strip()]


@pytest.fixture(scope="module")
def reference(workspace: Path):
    """The uninterrupted run, started now; calling the fixture's value waits for it and returns its directory."""
    out = workspace / "uninterrupted"
    process = _start(workspace, out)
    yield lambda: _finish(process, out)
    process.kill()  # only if the test failed before waiting for it
    process.wait()


def test_sigkill_inside_each_stage_kind_then_resume_matches_an_uninterrupted_run(workspace: Path, reference: Any) -> None:
    out = workspace / "killed"
    _kill_inside(workspace, out, "teacher")
    uninterrupted = reference()
    expected = _rows(uninterrupted)
    assert [r["stage"] for r in expected] == [s for s in STAGES for _ in range(EPOCHS[s])] + ["final"]
    for resumed, next_stage in zip(STAGES, STAGES[1:]):
        _kill_inside(workspace, out, next_stage, "--resume")
        written = _rows(out)
        assert written == expected[: len(written)], f"resuming inside the {resumed} stage changed the run"
    _finish(_start(workspace, out, "--resume"), out)
    assert _rows(out) == expected, "resuming inside the fusion stage changed the run"
    assert (out / "test_report.json").read_bytes() == (uninterrupted / "test_report.json").read_bytes()
    assert (out / "model" / "model.safetensors").read_bytes() == (uninterrupted / "model" / "model.safetensors").read_bytes()
