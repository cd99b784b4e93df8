"""Registries: lookups, helpful unknown-name errors, name rules, no silent replacement."""

from __future__ import annotations

import subprocess
import sys

import pytest

from erckit import plugins, registry
from erckit.errors import ErckitError, UnknownComponentError


def test_get_returns_the_registered_factory():
    factory = registry.encoders.get("telme.RobertaTeacher.v1")
    assert callable(factory)
    assert factory.__module__.startswith("erckit_telme")
    assert registry.encoders.origins["telme.RobertaTeacher.v1"].package.startswith("erckit-telme")


def test_every_registry_has_builtins():
    assert "erckit.ConcatFuser.v1" in registry.fusers.names()
    assert "erckit.KLDistill.v1" in registry.distillers.names()
    assert "erckit.Demo.v1" in registry.datasets.names()
    assert "erckit.LogMelAudio.v1" in registry.encoders.names()


def test_entry_point_only_component_is_registered():
    """example.BagOfWords.v1 exists only as an ``erckit_encoders`` entry point."""
    assert "example.BagOfWords.v1" in registry.encoders.names()
    origin = registry.encoders.origins["example.BagOfWords.v1"]
    assert origin.plugin == "entry point erckit_encoders"
    assert origin.package.startswith("erckit-example")


def test_unknown_name_lists_available_and_suggests_install():
    with pytest.raises(UnknownComponentError) as info:
        registry.encoders.get("acme.Whisper.v1")
    message = str(info.value)
    assert "acme.Whisper.v1" in message
    assert "telme.RobertaTeacher.v1" in message and "erckit.LogMelAudio.v1" in message
    assert "pip install erckit-acme" in message
    assert isinstance(info.value, ErckitError)


def test_misspelled_name_gets_a_did_you_mean():
    with pytest.raises(UnknownComponentError, match="Did you mean 'erckit.ConcatFuser.v1'"):
        registry.fusers.get("erckit.ConcatFusser.v1")


@pytest.mark.parametrize("name", ["ConcatFuser", "erckit.ConcatFuser", "Erckit.X.v1", "erckit.X.1", "a.b.c.v1", "erckit..v1"])
def test_invalid_names_are_refused(name):
    with pytest.raises(ErckitError, match="invalid"):
        registry.fusers.register(name, func=lambda: None)


def test_reregistering_a_name_with_another_function_is_refused():
    existing = registry.fusers.get("erckit.ConcatFuser.v1")
    with pytest.raises(ErckitError, match="already registered"):
        registry.fusers.register("erckit.ConcatFuser.v1", func=lambda num_classes: None)
    # registering the very same function again is harmless
    registry.fusers.register("erckit.ConcatFuser.v1", func=existing)
    assert registry.fusers.get("erckit.ConcatFuser.v1") is existing


def test_register_as_decorator_and_lookup():
    name = "testns.Decorated.v1"

    @registry.distillers.register(name)
    def decorated(temperature: float = 1.0):
        """A test distiller."""

    try:
        assert registry.distillers.get(name) is decorated
        assert name in registry.distillers.names()
    finally:
        registry.distillers.unregister(name)
    assert name not in registry.distillers.names() and name not in registry.distillers.origins


def test_unregister_forgets_the_name_and_allows_it_again():
    name = "testns.Transient.v1"

    def first(temperature: float = 1.0):
        """First."""

    def second(temperature: float = 2.0):
        """Second."""

    registry.distillers.register(name, func=first)
    assert registry.distillers.has(name) and name in registry.distillers
    registry.distillers.unregister(name)
    assert not registry.distillers.has(name) and name not in registry.distillers.origins
    with pytest.raises(UnknownComponentError, match="unknown distiller 'testns.Transient.v1'"):
        registry.distillers.get(name)
    registry.distillers.register(name, func=second)  # no "already registered": it is gone
    try:
        assert registry.distillers.get(name) is second
    finally:
        registry.distillers.unregister(name)


def test_a_lookup_calls_the_installed_loader_first():
    name = "testns.Lazy.v1"

    def lazy(num_classes: int):
        """Registered by the loader."""

    calls: list[str] = []

    def loader() -> None:
        calls.append("load")
        plugins.load_plugins()
        if not calls[1:]:  # first call only, as a real loader registers once
            registry.fusers.register(name, func=lazy)

    registry.set_plugin_loader(loader)
    try:
        assert registry.fusers.get(name) is lazy
        assert name in registry.fusers.names()
        assert len(calls) == 2
    finally:
        registry.set_plugin_loader(plugins.load_plugins)
        registry.fusers.unregister(name)


def test_a_fresh_interpreter_finds_plugin_components_without_loading_anything_first():
    code = (
        "from erckit import registry\n"
        "print(registry.encoders.get('telme.RobertaTeacher.v1').__module__)\n"
        "print(registry.encoders.origins['example.BagOfWords.v1'].plugin)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    module, plugin = result.stdout.splitlines()
    assert module.startswith("erckit_telme.") and plugin == "entry point erckit_encoders"


def test_get_registry_and_find_component():
    assert registry.get_registry("fusers") is registry.fusers
    with pytest.raises(ErckitError, match="encoders, distillers, fusers, datasets"):
        registry.get_registry("optimisers")
    kind, factory = registry.find_component("erckit.KLDistill.v1")
    assert kind is registry.distillers and callable(factory)
    with pytest.raises(UnknownComponentError, match="Available: "):
        registry.find_component("nope.Nothing.v1")


def test_a_non_callable_factory_is_refused():
    with pytest.raises(ErckitError, match=r"'testns.Number.v1': the factory is int 42, not a function"):
        registry.encoders.register("testns.Number.v1", func=42)
    assert "testns.Number.v1" not in registry.encoders.names()


def test_override_replaces_on_purpose_and_is_recorded():
    name = "testns.Replaced.v1"

    def first(temperature: float = 1.0):
        """First."""

    def second(temperature: float = 2.0):
        """Second."""

    registry.distillers.register(name, func=first)
    try:
        with pytest.raises(ErckitError, match=r"already registered by .*cannot register it too.*override=True"):
            registry.distillers.register(name, func=second)
        assert registry.distillers.get(name) is first
        registry.distillers.register(name, func=second, override=True)
        assert registry.distillers.get(name) is second
        assert registry.distillers.overrides[name].plugin == "test_registry"
    finally:
        registry.distillers.unregister(name)
    assert name not in registry.distillers.overrides
