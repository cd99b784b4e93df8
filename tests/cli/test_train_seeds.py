"""``erckit train --seeds``: one run per seed, summary.json with mean ± std, per-seed resume."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from erckit.cli.main import main
from erckit.errors import UsageError
from erckit.experiments.seeds import parse_seeds
from tiny_runs import write_tiny_recipe


def test_seeds_count_and_list() -> None:
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("0,4,9") == [0, 4, 9]
    assert parse_seeds("7,") == [7]
    for bad in ("0", "a,b", "1,1", ""):
        with pytest.raises(UsageError):
            parse_seeds(bad)


@pytest.mark.slow
def test_three_seeds_give_three_runs_and_their_mean_and_std(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = write_tiny_recipe(tmp_path, tmp_path / "demo", epochs=2)
    out = tmp_path / "runs"
    assert main(["train", str(recipe), "-o", str(out), "--seeds", "3", "--device", "cpu", "--threads", "1", "--no-progress"]) == 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1, 2]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["seed-0", "seed-1", "seed-2"]
    reports = {seed: json.loads((out / f"seed-{seed}" / "test_report.json").read_text()) for seed in range(3)}
    for seed in range(3):  # each run trained with its own seed
        assert "seed = %d" % seed in (out / f"seed-{seed}" / "recipe.toml").read_text()
    for key in ("weighted_f1", "macro_f1", "accuracy"):
        values = [reports[seed][key] for seed in range(3)]
        stats = summary["metrics"][f"test/{key}"]
        assert stats["values"] == {str(seed): reports[seed][key] for seed in range(3)}
        assert stats["mean"] == pytest.approx(statistics.fmean(values))
        assert stats["std"] == pytest.approx(statistics.stdev(values))
    for entry in reports[0]["per_class"]:
        per_class = [next(e["f1"] for e in reports[s]["per_class"] if e["label"] == entry["label"]) for s in range(3)]
        assert summary["metrics"][f"test/f1/{entry['label']}"]["mean"] == pytest.approx(statistics.fmean(per_class))
    # dev: the epoch the stage selected (its last "best" row), not the last epoch
    for seed in range(3):
        rows = [json.loads(line) for line in (out / f"seed-{seed}" / "metrics.jsonl").read_text().splitlines()]
        selected = [r for r in rows if r.get("best")][-1]
        assert summary["metrics"]["dev/weighted_f1"]["values"][str(seed)] == selected["dev/weighted_f1"]
    table = capsys.readouterr().err
    assert "mean ± std" in table and "seed 2" in table and "test/weighted_f1" in table

    # a second start without --resume is refused before anything trains
    assert main(["train", str(recipe), "-o", str(out), "--seeds", "3", "--device", "cpu", "--no-progress"]) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_seeds_with_resume_from_or_seed_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = write_tiny_recipe(tmp_path, tmp_path / "demo")
    assert main(["train", str(recipe), "--seeds", "2", "--resume-from", str(tmp_path)]) == 2
    assert "--resume-from" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        main(["train", str(recipe), "--seeds", "2", "--seed", "1"])
    assert exit.value.code == 2


@pytest.mark.slow
def test_a_killed_multi_seed_run_resumes_at_the_seed_it_stopped_in(tmp_path: Path) -> None:
    # Enough epochs that seed 1 is still training when the kill lands; one thread: the CPU is shared.
    recipe = write_tiny_recipe(tmp_path, tmp_path / "demo", epochs=25)
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "erckit", "train", str(recipe), "-o", str(out), "--seeds", "3",
               "--device", "cpu", "--threads", "1", "--no-progress"]
    log = tmp_path / "train.log"
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=tmp_path)
    state = out / "seed-1" / "checkpoints" / "latest" / "state.json"
    try:
        while True:
            try:
                if json.loads(state.read_text())["epoch"] >= 2:
                    break
            except (OSError, ValueError, KeyError):
                pass  # not written yet, or being replaced right now
            assert process.poll() is None, f"the run ended before seed 1 epoch 2:\n{log.read_text()[-3000:]}"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert (out / "seed-0" / "model" / "model.safetensors").is_file()
    assert not (out / "seed-1" / "model").exists() and not (out / "seed-2").exists()
    assert not (out / "summary.json").exists()
    seed0 = {p.name: p.stat().st_mtime_ns for p in (out / "seed-0").rglob("*") if p.is_file()}
    stopped_at = json.loads(state.read_text())["epoch"]

    with log.open("w") as handle:
        done = subprocess.run([*command, "--resume"], stdout=handle, stderr=subprocess.STDOUT, cwd=tmp_path, timeout=300)
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    assert "seed 0 (1/3): finished earlier" in text
    assert f"stage 1 at epoch {stopped_at}" in text  # seed 1 continued from its checkpoint
    assert {p.name: p.stat().st_mtime_ns for p in (out / "seed-0").rglob("*") if p.is_file()} == seed0
    for seed in range(3):
        rows = [json.loads(line) for line in (out / f"seed-{seed}" / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows if r["stage"] == "teacher"] == list(range(1, 26))
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["metrics"]["test/weighted_f1"]["values"]) == ["0", "1", "2"]


def test_one_seed_has_no_standard_deviation(tmp_path: Path) -> None:
    from erckit.experiments.seeds import summarize

    run = tmp_path / "seed-4"
    run.mkdir()
    report = {"weighted_f1": 0.5, "macro_f1": 0.25, "accuracy": 0.75, "per_class": [{"label": "joy", "f1": 0.5}]}
    (run / "test_report.json").write_text(json.dumps(report))
    (run / "metrics.jsonl").write_text(json.dumps({"stage": "t", "epoch": 1, "dev/weighted_f1": 0.4, "best": True}) + "\n")
    summary = summarize({4: run}, "r")
    assert summary["metrics"]["test/weighted_f1"] == {"mean": 0.5, "std": None, "values": {"4": 0.5}}
    assert summary["metrics"]["test/f1/joy"]["mean"] == 0.5 and summary["metrics"]["dev/weighted_f1"]["mean"] == 0.4
