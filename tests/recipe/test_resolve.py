"""The one resolver: every component table is checked and built by the same code, so a table that
passes recipe validation cannot fail later for a signature reason."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

from erckit.errors import ErckitError
from erckit.recipe import resolve
from erckit.recipe.resolve import Component




def test_an_injected_argument_is_not_missing_and_is_passed(registered):
    seen = {}

    def needs_classes(num_classes: int, scale: float = 2.0):
        seen.update(num_classes=num_classes, scale=scale)
        return "built"

    registered("distillers", "testres.NeedsClasses.v1", needs_classes)
    table, problems = resolve.check_table("distillers", {"factory": "testres.NeedsClasses.v1"}, "stages -> s -> losses -> 0")
    assert problems == []
    assert table == {"factory": "testres.NeedsClasses.v1", "scale": 2.0}
    assert resolve.create("distillers", table, num_classes=7) == "built"
    assert seen == {"num_classes": 7, "scale": 2.0}


def test_a_recipe_may_not_set_an_injected_argument(registered):
    registered("objectives", "testres.Obj.v1", lambda num_classes, labels, gamma=1.0: None)
    _, problems = resolve.check_table("objectives", {"factory": "testres.Obj.v1", "labels": ["a"]}, "p")
    assert problems == ["p -> labels: set by erckit, not by the recipe (testres.Obj.v1)"]


def test_a_missing_required_argument_is_reported_with_the_path(registered):
    registered("optimizers", "testres.Opt.v1", lambda params, lr, momentum=0.9: None)
    _, problems = resolve.check_table("optimizers", {"factory": "testres.Opt.v1"}, "stages -> teacher -> optimizer")
    assert problems == ["stages -> teacher -> optimizer -> lr: missing required argument of testres.Opt.v1"]


def test_an_argument_injected_elsewhere_is_an_ordinary_required_argument_here(registered):
    """``input_dims`` is injected into fusers only: a distiller requiring it must say so at check time."""
    registered("distillers", "testres.WantsDims.v1", lambda input_dims: None)
    _, problems = resolve.check_table("distillers", {"factory": "testres.WantsDims.v1"}, "p")
    assert problems == ["p -> input_dims: missing required argument of testres.WantsDims.v1"]


def test_unknown_name_lists_the_available_ones_with_the_path():
    table, problems = resolve.check_table("schedulers", {"factory": "erckit.Nope.v1"}, "stages -> s -> scheduler")
    assert table is None and len(problems) == 1
    assert problems[0].startswith("stages -> s -> scheduler -> factory: unknown scheduler 'erckit.Nope.v1'.")
    assert "Available:" in problems[0] and "pip install" not in problems[0]


def test_nested_component_tables_are_checked_by_their_own_registry(registered):
    def outer(losses: Annotated[list[Any], Component("distillers", reserved=("weight",))] = []):  # noqa: B006
        return losses

    registered("stages", "testres.Outer.v1", outer)
    registered("distillers", "testres.Inner.v1", lambda temperature: None)
    table = {"kind": "testres.Outer.v1", "losses": ["erckit.KLDistill.v1", {"factory": "testres.Inner.v1", "weight": 0.5}]}
    checked, problems = resolve.check_table("stages", table, "stages -> x", key="kind")
    assert problems == ["stages -> x -> losses -> 1 -> temperature: missing required argument of testres.Inner.v1"]
    table["losses"][1]["temperature"] = 2
    checked, problems = resolve.check_table("stages", table, "stages -> x", key="kind")
    assert problems == []
    # a bare name became a table with its defaults; the caller's reserved key is kept as given
    assert checked["losses"] == [
        {"factory": "erckit.KLDistill.v1", "temperature": 2.0},
        {"factory": "testres.Inner.v1", "weight": 0.5, "temperature": 2},
    ]


def test_create_refuses_an_injection_the_caller_cannot_supply(registered):
    registered("schedulers", "testres.Sched.v1", lambda optimizer, run_steps: None)
    with pytest.raises(ErckitError, match="requires 'run_steps', which erckit injects"):
        resolve.create("schedulers", {"factory": "testres.Sched.v1"}, optimizer=object())
