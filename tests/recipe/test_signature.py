"""A factory's signature is the schema of its recipe table."""

from __future__ import annotations

from typing import Any, Literal

from erckit.recipe.signature import INJECTED, check_args, factory_parameters, summary


def factory(num_classes: int, size: int, rate: float = 0.5, mode: Literal["a", "b"] = "a",
            names: list[str] | None = None, flag: bool = False) -> Any:
    """A test factory.

    More text.
    """


def test_defaults_are_filled_in_and_injected_arguments_left_out():
    filled, problems = check_args(factory, "t.F.v1", {"size": 3}, "model -> x")
    assert problems == []
    assert filled == {"size": 3, "rate": 0.5, "mode": "a", "names": None, "flag": False}
    assert "num_classes" in INJECTED


def test_values_are_coerced_by_type_hints():
    filled, problems = check_args(factory, "t.F.v1", {"size": 3, "rate": 1}, "p")
    assert problems == [] and filled["rate"] == 1.0 and isinstance(filled["rate"], float)


def test_unknown_argument_suggests_and_lists_valid_ones():
    _, problems = check_args(factory, "t.F.v1", {"size": 1, "rat": 0.1}, "model -> x")
    assert problems == ["model -> x -> rat: unknown argument of t.F.v1. Did you mean 'rate'? Valid: size, rate, mode, names, flag"]


def test_missing_required_argument():
    _, problems = check_args(factory, "t.F.v1", {}, "model -> x")
    assert problems == ["model -> x -> size: missing required argument of t.F.v1"]


def test_wrong_types_are_all_reported():
    _, problems = check_args(factory, "t.F.v1", {"size": "ten", "mode": "c", "names": "x"}, "p")
    assert len(problems) == 3
    assert problems[0].startswith("p -> size: Input should be a valid integer") and "'ten'" in problems[0]
    assert problems[1].startswith("p -> mode:") and "'a' or 'b'" in problems[1]
    assert problems[2].startswith("p -> names:")


def test_injected_argument_set_by_the_recipe_is_refused():
    _, problems = check_args(factory, "t.F.v1", {"size": 1, "num_classes": 4}, "p")
    assert problems == ["p -> num_classes: set by erckit, not by the recipe (t.F.v1)"]


def test_var_keyword_factories_accept_extra_arguments():
    def loose(width: int = 1, **kwargs: Any) -> Any:
        pass

    filled, problems = check_args(loose, "t.L.v1", {"width": 2, "anything": "goes"}, "p")
    assert problems == [] and filled == {"width": 2, "anything": "goes"}


def test_string_annotations_are_resolved_and_unresolvable_ones_accept_anything():
    # this module uses ``from __future__ import annotations``: hints are strings, torch is not imported here
    def lazy(n: int = 1, module: torch.nn.Module | None = None, quoted: "torch.Tensor" = None) -> Any:  # noqa: F821
        pass

    _, problems = check_args(lazy, "t.Z.v1", {"n": "x"}, "p")
    assert len(problems) == 1 and problems[0].startswith("p -> n:")
    filled, problems = check_args(lazy, "t.Z.v1", {"module": object, "quoted": 1}, "p")
    assert problems == [] and filled["module"] is object and filled["quoted"] == 1


def test_factory_parameters_and_summary():
    assert list(factory_parameters(factory)) == ["num_classes", "size", "rate", "mode", "names", "flag"]
    assert summary(factory) == "A test factory."
    assert summary(lambda: None) == ""


def test_registered_factories_have_full_type_hints():
    """Every registered factory's settable parameters are annotated (the signature is the schema)."""
    import inspect

    from erckit.registry import REGISTRIES

    for kind, registry in REGISTRIES.items():
        for name, f in registry.get_all().items():
            for param, p in factory_parameters(f).items():
                assert p.annotation is not inspect.Parameter.empty, f"{kind} {name}: {param} has no type hint"
            assert summary(f), f"{kind} {name} has no docstring"


def test_bool_arguments_are_strict_inside_optionals_and_lists():
    def factory(flag: bool = False, maybe: bool | None = None, flags: list[bool] | None = None):
        """Booleans three ways."""

    filled, problems = check_args(factory, "t.B.v1", {"flag": True, "maybe": None, "flags": [True, False]}, "p")
    assert problems == [] and filled == {"flag": True, "maybe": None, "flags": [True, False]}
    _, problems = check_args(factory, "t.B.v1", {"flag": "no", "maybe": "yes", "flags": [1, "off"]}, "p")
    assert [p.split(":")[0] for p in problems] == ["p -> flag", "p -> maybe", "p -> flags -> 0", "p -> flags -> 1"]
