"""The authors' TelME recipes say what their scripts do; the erckit variants name every difference."""

from __future__ import annotations

import csv
import math
import tomllib
from pathlib import Path

import pytest
import torch

from erckit.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
SHARED_MELD = ROOT.parent / "shared" / "data" / "meld"  # the real MELD text splits (../shared), where present
TRAIN_ROWS = {"telme_meld.toml": 9989, "telme_iemocap.toml": 5163}  # len(train) in their scripts


def raw(name: str) -> dict:
    return tomllib.loads((RECIPES / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["telme_meld.toml", "telme_iemocap.toml"])
def test_authors_recipe_has_their_model_and_procedure(name: str) -> None:
    recipe = load_recipe(RECIPES / name)
    assert recipe.seed == 42
    assert [s.name for s in recipe.stages] == ["teacher", "audio_student", "visual_student", "fusion"]
    students = [s.args.get("students") for s in recipe.stages if s.kind in ("distill", "erckit.Distill.v1")]
    assert students == [["audio"], ["visual"]]  # each student in its own loop, audio first
    fuser = recipe.model.fuser
    assert fuser.factory == "telme.ASF.v1" and fuser.args["order"] == ["audio", "visual"]
    encoders = recipe.model.encoders
    assert {n: e.args["preprocessing"] for n, e in encoders.items()} == {n: "authors" for n in ("text", "audio", "visual")}
    assert encoders["audio"].args["pooling"] == "frame0"
    assert encoders["audio"].args["config_overrides"] == {"mask_time_length": 3}
    rows = TRAIN_ROWS[name]
    for stage in recipe.stages:
        assert stage.max_grad_norm == 10.0 and stage.batch_size == 4 and not stage.bucket_by_length
        assert stage.optimizer.factory == "erckit.AdamW.v1" and stage.optimizer.args["decay_all"] is True
        schedule = stage.scheduler.args
        assert stage.scheduler.factory == "erckit.LinearSchedule.v1"
        # counted in samples (len(train) and len(train) x epochs), stepped per batch
        assert schedule["warmup_steps"] == rows and schedule["total_steps"] == rows * stage.epochs
        assert stage.precision == (None if stage.name == "teacher" else "fp16")


def test_authors_label_orders_are_alphabetical_by_their_names() -> None:
    assert raw("telme_meld.toml")["data"]["labels"] == sorted(raw("telme_meld.toml")["data"]["labels"])
    codes = ["ang", "exc", "fru", "hap", "neu", "sad"]
    assert [label[:3] for label in raw("telme_iemocap.toml")["data"]["labels"]] == codes


def test_the_meld_schedule_peaks_in_epoch_four_and_ends_at_83_percent() -> None:
    """What the recipe's comment claims, computed with the schedule it names."""
    from erckit.builtin.training import linear_schedule

    steps_per_epoch = math.ceil(TRAIN_ROWS["telme_meld.toml"] / 4)
    stage = load_recipe(RECIPES / "telme_meld.toml").stages[0]
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = linear_schedule(optimizer, run_steps=steps_per_epoch * stage.epochs, **stage.scheduler.args)
    rates = []
    for _ in range(steps_per_epoch * stage.epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    peak_step = max(range(len(rates)), key=rates.__getitem__)
    assert peak_step // steps_per_epoch == 3  # the fourth epoch
    assert rates[-1] / max(rates) == pytest.approx(0.833, abs=0.005)


@pytest.mark.skipif(not (SHARED_MELD / "train_sent_emo.csv").exists(), reason="the MELD text splits are not on this machine")
def test_meld_warmup_is_the_number_of_training_utterances() -> None:
    with open(SHARED_MELD / "train_sent_emo.csv", encoding="utf-8", newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))
    assert rows == TRAIN_ROWS["telme_meld.toml"]


@pytest.mark.parametrize("name", ["telme_meld_erckit.toml", "telme_iemocap_erckit.toml"])
def test_erckit_variants_keep_the_corrected_pipeline(name: str) -> None:
    recipe = load_recipe(RECIPES / name)
    assert recipe.model.fuser.factory == "erckit.ModalityShift.v1"
    assert all(e.args.get("preprocessing", "erckit") == "erckit" for e in recipe.model.encoders.values())
    assert all(s.precision is None for s in recipe.stages)
    header = (RECIPES / name).read_text(encoding="utf-8").split("\n\n")[0]
    assert "telme_meld.toml" in header or "telme_iemocap.toml" in header  # points at the authors' recipe
