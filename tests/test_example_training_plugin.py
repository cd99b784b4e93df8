"""The worked third-party plugin of docs/plugins.md: plugins/example adds a stage kind, an objective,
an optimizer, a scheduler and a logger through entry points only, and the quick start trains with
all of them through the real `erckit train`."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from erckit import registry
from erckit.cli.main import main
from erckit.model import ERCModel

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.toml"

RECIPE = """\
extends = "{quickstart}"

[[stages]]
name = "teacher"
kind = "supervised"
encoders = ["text"]
epochs = 3
lr = 1e-3

[[stages]]
name = "probe"
kind = "example.LinearProbe.v1"
encoders = ["text"]
epochs = 2
objective = {{ factory = "example.ConfidencePenalty.v1", beta = 0.2 }}
optimizer = {{ factory = "example.RMSprop.v1", lr = 1e-3 }}
scheduler = {{ factory = "example.StepSchedule.v1", step_size = 5, gamma = 0.5 }}

[[stages]]
name = "students"
kind = "distill"
teacher = "text"
students = ["audio", "visual"]
epochs = 1
lr = 5e-4
losses = [{{ factory = "telme.ResponseKD.v1", tau = 4.0 }}]

[[stages]]
name = "fusion"
kind = "fuse"
epochs = 2
lr = 1e-3

[[loggers]]
factory = "erckit.JSONL.v1"

[[loggers]]
factory = "example.CSV.v1"
"""


def test_the_components_arrive_through_entry_points_only():
    """No register_components hook names them: catalogue's entry-point groups do."""
    for kind, name in [
        ("stages", "example.LinearProbe.v1"), ("objectives", "example.ConfidencePenalty.v1"),
        ("optimizers", "example.RMSprop.v1"), ("schedulers", "example.StepSchedule.v1"), ("loggers", "example.CSV.v1"),
    ]:
        target = registry.get_registry(kind)
        assert name in target.names()
        assert target.origins[name].package.startswith("erckit-example")


@pytest.mark.slow
def test_the_quick_start_trains_with_the_plugins_training_components(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("DEMO_ROOT", str(tmp_path / "demo"))
    recipe = tmp_path / "with_plugin.toml"
    recipe.write_text(RECIPE.format(quickstart=QUICKSTART), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["recipe", "check", str(recipe)]) == 0
    assert main(["train", str(recipe), "-o", str(run), "--no-progress",
                 "--set", f'data.cache_dir="{tmp_path / "cache"}"']) == 0
    said = capsys.readouterr().err

    # The probe trains the text head only: Linear(64 -> 4) = 260 parameters, not the encoder's.
    trained = dict(re.findall(r"stage (\w+): training ([\d,]+) parameters", said))
    assert trained["probe"] == "260", said
    assert int(trained["teacher"].replace(",", "")) > 260 * 100

    # The CSV logger saw every row the JSONL logger saw.
    jsonl = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["stage"] for r in jsonl] == ["teacher"] * 3 + ["probe"] * 2 + ["students", "fusion", "fusion", "final"]
    assert {int(r["row"]) for r in rows} == set(range(len(jsonl)))
    probe_losses = [float(r["value"]) for r in rows if r["stage"] == "probe" and r["name"] == "train/loss"]
    assert probe_losses == [row["train/loss"] for row in jsonl if row["stage"] == "probe"]

    # The resolved recipe records the plugin's components with their defaults filled in.
    resolved = (run / "recipe.toml").read_text()
    assert 'factory = "example.StepSchedule.v1"' in resolved and "step_size = 5" in resolved
    assert 'kind = "example.LinearProbe.v1"' in resolved and 'head = "classifier"' in resolved
    assert ERCModel.from_pretrained(run).use_fuser
