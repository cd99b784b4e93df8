"""Every registry erckit resolves recipe names against, declared in one place.

Each registry is a catalogue registry with entry points on, so a package can
register a factory without code, through the entry-point group
``erckit_<registry>`` (e.g. ``erckit_encoders``). Plugins may also register in
bulk through the ``register_components`` pluggy hook (see ``erckit.hookspecs``).

Names follow ``"<namespace>.<Name>.v<N>"``. A published ``vN`` never changes
behaviour: a new behaviour is a new version.

    >>> from erckit import registry
    >>> factory = registry.fusers.get("erckit.ConcatFuser.v1")
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable

import catalogue

from .errors import ErckitError, UnknownComponentError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*\.v[0-9]+$")


@dataclass(frozen=True)
class Origin:
    """Where a registered component came from, for ``erckit components``."""

    plugin: str
    package: str


class Registry(catalogue.Registry):
    """A catalogue registry that loads erckit plugins before answering.

    Unknown names raise ``UnknownComponentError`` listing what is available,
    instead of catalogue's bare ``RegistryError``. A name is registered once:
    registering another factory under it is an error naming both packages,
    unless the call says ``override=True`` (see docs/plugins.md).
    """

    def __init__(self, kind: str, description: str, *, singular: str, injected: tuple[str, ...] = ()):
        super().__init__(("erckit", kind), entry_points=True)
        self.kind = kind
        self.singular = singular
        self.description = description
        # Arguments erckit passes to this registry's factories when their signature names them;
        # a recipe never sets them (erckit.recipe.resolve).
        self.injected = frozenset(injected)
        self.origins: dict[str, Origin] = {}
        self.refused: dict[str, str] = {}  # name -> why no plugin's factory is used for it
        self.overrides: dict[str, Origin] = {}  # name -> the origin of the factory an override replaced

    def register(
        self, name: str, *, func: Any | None = None, origin: Origin | None = None, override: bool = False
    ) -> Any:
        check_name(self.kind, name)

        def do_register(factory: Any) -> Any:
            check_factory(self.kind, name, factory)
            new_origin = origin or _origin_of(factory)
            if self._has(name):
                existing = super(Registry, self).get(name)
                if existing is factory:
                    return factory  # the same function again: harmless
                if not override:
                    raise ErckitError(duplicate_message(self.kind, name, self.origins.get(name), new_origin))
                if name in self.origins:
                    self.overrides[name] = self.origins[name]
            super(Registry, self).register(name, func=factory)
            self.origins[name] = new_origin
            return factory

        return do_register(func) if func is not None else do_register

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests, and plugins undoing their own registration)."""
        # catalogue has no public way to unregister; its REGISTRY dict is public.
        catalogue.REGISTRY.pop((*self.namespace, name), None)
        self.origins.pop(name, None)
        self.overrides.pop(name, None)

    def _has(self, name: str) -> bool:
        return catalogue.check_exists(*self.namespace, name)

    # Entry points are loaded (tolerantly) by erckit.plugins and registered
    # above, so catalogue's own eager, all-or-nothing loading is switched off.
    def _get_entry_points(self) -> list:
        return []

    def get(self, name: str) -> Callable[..., Any]:
        from .plugins import load_plugins

        load_plugins()
        if not self._has(name) and name in self.refused:
            raise UnknownComponentError(self.refused[name])
        if not self._has(name):
            raise UnknownComponentError(self.unknown_message(name))
        return super().get(name)

    def get_all(self) -> dict[str, Any]:
        from .plugins import load_plugins

        load_plugins()
        return dict(sorted(super().get_all().items()))

    def names(self) -> list[str]:
        return list(self.get_all())

    def unknown_message(self, name: str) -> str:
        available = self.names()
        message = f"unknown {self.singular} {name!r}."
        close = difflib.get_close_matches(name, available, n=1)
        if close:
            message += f" Did you mean {close[0]!r}?"
        message += f" Available: {', '.join(available) if available else 'none'}."
        namespace = name.split(".", 1)[0]
        if namespace != "erckit" and namespace not in {n.split('.', 1)[0] for n in available}:
            message += f" If {name!r} comes from a plugin, install it (e.g. pip install erckit-{namespace})."
        return message


def check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ErckitError(
            f"invalid {kind} name {name!r}: names look like 'namespace.Name.v1' "
            "(lower-case namespace, a name, a version)"
        )


def check_factory(kind: str, name: str, factory: Any) -> None:
    """A factory must be callable with a signature erckit can read (the signature is the schema)."""
    if not callable(factory):
        raise ErckitError(f"{kind} {name!r}: the factory is {type(factory).__name__} {factory!r:.60}, not a function")
    try:
        inspect.signature(factory)
    except (TypeError, ValueError) as error:
        raise ErckitError(f"{kind} {name!r}: the factory's signature cannot be read ({error})") from None


def duplicate_message(kind: str, name: str, first: Origin | None, second: Origin | None, *, both: bool = False) -> str:
    """``first`` holds (or, with ``both``, also claims) ``name``; ``second`` wants it too."""

    def who(origin: Origin | None) -> str:
        return f"{origin.package} (plugin {origin.plugin!r})" if origin else "an unknown package"

    claim = f"is registered by both {who(first)} and {who(second)}" if both else (
        f"is already registered by {who(first)}; {who(second)} cannot register it too"
    )
    return (
        f"{kind} {name!r} {claim}: a published name is never replaced silently; uninstall one of "
        "them, publish a new version (e.g. .v2), or pass override=True to replace it on purpose (docs/plugins.md)"
    )


def _origin_of(factory: Any) -> Origin:
    module = getattr(factory, "__module__", "") or ""
    return Origin(plugin=module.split(".", 1)[0] or "?", package=package_of_module(module))


@functools.lru_cache(maxsize=None)
def _distributions_by_package() -> dict[str, list[str]]:
    from importlib import metadata

    return dict(metadata.packages_distributions())  # scans every installed package: do it once


@functools.lru_cache(maxsize=None)
def package_of_module(module: str) -> str:
    """'name version' of the distribution that installs ``module``, if known."""
    from importlib import metadata

    top = module.split(".", 1)[0]
    for dist_name in _distributions_by_package().get(top, []):
        try:
            return f"{dist_name} {metadata.version(dist_name)}"
        except metadata.PackageNotFoundError:
            continue
    return top or "?"


encoders = Registry(
    "encoders", "turn one modality of an utterance into an embedding and logits",
    singular="encoder", injected=("num_classes",),
)
distillers = Registry(
    "distillers", "losses between a student's and a teacher's outputs", singular="distiller", injected=("num_classes",)
)
fusers = Registry(
    "fusers", "combine the anchor embedding with other modalities into logits",
    singular="fuser", injected=("num_classes", "input_dims", "anchor"),
)
datasets = Registry("datasets", "read a corpus into dialogues with a label set", singular="dataset")
stages = Registry(
    "stages", "stage kinds: what a training stage trains, on which batches, towards which loss", singular="stage kind"
)
objectives = Registry(
    "objectives", "training losses on a head's logits and the labels (and teachers' outputs)",
    singular="objective", injected=("num_classes", "labels", "class_counts"),
)
optimizers = Registry("optimizers", "torch optimisers over a stage's trained parameters", singular="optimizer", injected=("params",))
schedulers = Registry(
    "schedulers", "learning-rate schedules over a stage's optimiser steps",
    singular="scheduler", injected=("optimizer", "run_steps"),
)
loggers = Registry("loggers", "where training metrics go (JSON lines, TensorBoard, MLflow, ...)", singular="logger", injected=("run_dir",))

REGISTRIES: dict[str, Registry] = {
    r.kind: r for r in (encoders, distillers, fusers, datasets, stages, objectives, optimizers, schedulers, loggers)
}


def get_registry(kind: str) -> Registry:
    """The registry called ``kind`` ('encoders', 'fusers', ...)."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise ErckitError(
            f"unknown component kind {kind!r}; choose one of: {', '.join(REGISTRIES)}"
        ) from None


def find_component(name: str) -> tuple[Registry, Callable[..., Any]]:
    """Look a name up in every registry (for messages and ``erckit components``)."""
    for registry in REGISTRIES.values():
        if registry._has(name) or name in registry.get_all():
            return registry, registry.get(name)
    everything = sorted(n for r in REGISTRIES.values() for n in r.get_all())
    raise UnknownComponentError(
        f"unknown component {name!r}. Available: {', '.join(everything) or 'none'}."
    )
