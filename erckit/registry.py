"""Every registry erckit resolves recipe names against, declared in one place.

Each registry keeps its factories in a catalogue registry (namespace
``("erckit", kind)``). A package can register a factory without code, through
the entry-point group ``erckit_<registry>`` (e.g. ``erckit_encoders``: catalogue's
own naming), or in bulk through the ``register_components`` pluggy hook (see
``erckit.hookspecs``).

Names follow ``"<namespace>.<Name>.v<N>"``. A published ``vN`` never changes
behaviour: a new behaviour is a new version.

    >>> from erckit import registry
    >>> factory = registry.fusers.get("erckit.ConcatFuser.v1")

Dependencies point one way: ``erckit.plugins`` imports this module and registers
into it; this module never imports the plugin loader. Instead a lookup first
calls the loader installed with ``set_plugin_loader``, which ``erckit.plugins``
does when it is imported, and ``import erckit`` imports it. So
``registry.encoders.get(name)`` sees every plugin without a call first.
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
PROJECT = "erckit"


def _no_plugins() -> None:
    """The loader until ``erckit.plugins`` installs its own: nothing to load."""


_load_plugins: Callable[[], None] = _no_plugins


def set_plugin_loader(load: Callable[[], None]) -> None:
    """Call ``load`` before every lookup, so plugins register before a name is looked up.

    ``load`` must be idempotent and cheap once done (``erckit.plugins.load_plugins``).
    """
    global _load_plugins
    _load_plugins = load


@dataclass(frozen=True)
class Origin:
    """Where a registered component came from, for ``erckit components``."""

    plugin: str
    package: str


class Registry:
    """One kind of component: a catalogue registry that loads erckit plugins before answering.

    Unknown names raise ``UnknownComponentError`` listing what is available,
    instead of catalogue's bare ``RegistryError``. A name is registered once:
    registering another factory under it is an error naming both packages,
    unless the call says ``override=True`` (see docs/plugins.md).

    Catalogue's own entry-point loading stays off (``entry_points=False``): it
    imports every entry point of the group on any ``get_all`` (one broken plugin
    would break every lookup) and prefers an entry point over a registered name
    (which would bypass the one-owner rule). ``erckit.plugins`` reads
    ``entry_point_group`` itself, one entry point at a time, and registers here
    what it accepts.
    """

    def __init__(self, kind: str, description: str, *, singular: str, injected: tuple[str, ...] = ()):
        self.kind = kind
        self.singular = singular
        self.description = description
        self.namespace = (PROJECT, kind)
        self.entry_point_group = "_".join(self.namespace)  # catalogue's name for the group
        self._factories = catalogue.create(*self.namespace, entry_points=False)
        # Arguments erckit passes to this registry's factories when their signature names them;
        # a recipe never sets them (erckit.recipe.resolve).
        self.injected = frozenset(injected)
        self.origins: dict[str, Origin] = {}
        self.refused: dict[str, str] = {}  # name -> why no plugin's factory is used for it
        self.overrides: dict[str, Origin] = {}  # name -> the origin of the factory an override replaced

    def __repr__(self) -> str:
        return f"<erckit registry {self.kind!r}>"

    def register(
        self, name: str, *, func: Any | None = None, origin: Origin | None = None, override: bool = False
    ) -> Any:
        """Register ``func`` under ``name``, or return a decorator that does."""
        check_name(self.kind, name)

        def do_register(factory: Any) -> Any:
            check_factory(self.kind, name, factory)
            new_origin = origin or _origin_of(factory)
            if name in self._factories:
                existing = self._factories.get(name)
                if existing is factory:
                    return factory  # the same function again: harmless
                if not override:
                    raise ErckitError(duplicate_message(self.kind, name, self.origins.get(name), new_origin))
                if name in self.origins:
                    self.overrides[name] = self.origins[name]
            self._factories.register(name, func=factory)
            self.origins[name] = new_origin
            return factory

        return do_register(func) if func is not None else do_register

    def unregister(self, name: str) -> None:
        """Forget ``name`` and what was recorded about it (tests, a plugin undoing its own registration, ``reset_plugins``)."""
        _forget(self.namespace, name)
        self.origins.pop(name, None)
        self.overrides.pop(name, None)

    def has(self, name: str) -> bool:
        _load_plugins()
        return name in self._factories

    __contains__ = has

    def get(self, name: str) -> Callable[..., Any]:
        _load_plugins()
        if name not in self._factories:
            raise UnknownComponentError(self.refused.get(name) or self.unknown_message(name))
        return self._factories.get(name)

    def get_all(self) -> dict[str, Any]:
        _load_plugins()
        return dict(sorted(self._factories.get_all().items()))

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


def _forget(namespace: tuple[str, ...], name: str) -> None:
    # catalogue (2.0.10) offers no public way to remove a registration: only its
    # module-level REGISTRY dict holds them. This is erckit's one use of it.
    catalogue.REGISTRY.pop((*namespace, name), None)


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
        if registry.has(name):
            return registry, registry.get(name)
    everything = sorted(n for r in REGISTRIES.values() for n in r.get_all())
    raise UnknownComponentError(
        f"unknown component {name!r}. Available: {', '.join(everything) or 'none'}."
    )
