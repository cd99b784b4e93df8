"""Plugin discovery: built-in plugins, then every installed ``erckit`` entry point.

Built-ins go through exactly the path a third-party plugin does. Set
``ERCKIT_DISABLE_PLUGIN_AUTOLOAD=1`` to load only the built-ins (tests do), and
``ERCKIT_PLUGINS=name1,name2`` to load chosen entry points (by entry-point or
distribution name) anyway.
A plugin that fails to import or register (any exception, SystemExit included),
claims a name another package registers, or registers something that is not a
factory costs one warning naming it and is skipped; the rest still loads.

This module sits above ``erckit.registry``: it registers into the registries and,
when imported, installs ``load_plugins`` as the registries' loader, so a lookup
loads plugins first (``import erckit`` imports this module).
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import ErckitError
from .registry import (
    PROJECT,
    REGISTRIES,
    Origin,
    check_factory,
    check_name,
    duplicate_message,
    get_registry,
    package_of_module,
    set_plugin_loader,
)

ENTRY_POINT_GROUP = PROJECT
AUTOLOAD_ENV = "ERCKIT_DISABLE_PLUGIN_AUTOLOAD"
SELECT_ENV = "ERCKIT_PLUGINS"

hookimpl = pluggy.HookimplMarker(PROJECT)

BUILTIN_PLUGINS = (
    "erckit.builtin.components",
    "erckit.builtin.datasets",
    "erckit.builtin.stages",
    "erckit.builtin.training",
    "erckit.builtin.loggers",
)


class PluginLoadWarning(UserWarning):
    """A plugin could not be imported or failed while registering."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    package: str
    version: str
    source: str  # "built-in", "entry point erckit", "entry point erckit_encoders", ...


_lock = threading.RLock()
_manager: pluggy.PluginManager | None = None
_loaded = False  # every plugin is registered (set last, so another thread never sees half)
_loading = False  # this process is loading now: a lookup made while loading does not start again
_infos: list[PluginInfo] = []
_failures: list[str] = []


def _autoload_enabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in {"1", "true", "yes", "on"}


def _selected() -> set[str]:
    return {n.strip() for n in os.environ.get(SELECT_ENV, "").split(",") if n.strip()}


def _should_load(entry_point: metadata.EntryPoint) -> bool:
    if _autoload_enabled():
        return True
    selected = _selected()
    dist = entry_point.dist
    return entry_point.name in selected or (dist is not None and dist.name in selected)


def _warn(what: str, error: BaseException) -> None:
    message = f"{what} failed to load: {type(error).__name__}: {error}"
    _failures.append(message)
    warnings.warn(message, PluginLoadWarning, stacklevel=3)


def report_plugin_problem(message: str) -> None:
    """One warning (and one line of ``erckit plugins``) for a plugin part that was skipped."""
    _failures.append(message)
    warnings.warn(message, PluginLoadWarning, stacklevel=3)


def plugin_label(name: str) -> str:
    """``plugin 'telme' (erckit-telme 0.1.0)`` for messages."""
    for info in _infos:
        if info.name == name:
            return f"plugin {name!r} ({info.package} {info.version})"
    return f"plugin {name!r}"


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every plugin loaded."""
    load_plugins()
    assert _manager is not None
    return _manager


def load_plugins() -> None:
    """Discover and register all plugins once per process (idempotent, thread-safe)."""
    global _loading, _loaded
    if _loaded:
        return
    with _lock:  # re-entrant: the loading thread itself passes, and returns below
        if _loaded or _loading:
            return
        _loading = True
        try:
            _load()
            _loaded = True
        finally:
            _loading = False


def _load() -> None:
    global _manager
    # Built-ins first, then pluggy entry points, then every registration they ask for, at once.
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    packages: dict[str, str] = {}  # plugin name -> "distribution version"
    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)
        manager.register(module, name=module_name)
        _infos.append(PluginInfo(module_name, "erckit", _version("erckit"), "built-in"))
    for entry_point in _entry_points(ENTRY_POINT_GROUP):
        if not _should_load(entry_point) or manager.has_plugin(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
            manager.register(plugin, name=entry_point.name)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # SystemExit too: a broken plugin must not end erckit
            _warn(_describe(entry_point), error)
            continue
        packages[entry_point.name] = _dist_label(entry_point)
        _infos.append(_info(entry_point, f"entry point {ENTRY_POINT_GROUP}"))
    _manager = manager
    claims = _claims_from_hooks(manager, packages) + _claims_from_registry_entry_points()
    _register_claims(claims)


@dataclass(frozen=True)
class _Claim:
    """One plugin asking to register one factory under one name."""

    kind: str
    name: str
    factory: Any
    origin: Origin
    override: bool
    builtin: bool
    label: str  # who asked, for messages


def _claims_from_hooks(manager: pluggy.PluginManager, packages: dict[str, str]) -> list[_Claim]:
    claims: list[_Claim] = []
    # Each implementation is called on its own so the table can say which plugin
    # registered which component, and a failing plugin is skipped as a whole.
    for impl in manager.hook.register_components.get_hookimpls():
        builtin = impl.plugin_name in BUILTIN_PLUGINS
        module = getattr(impl.plugin, "__name__", type(impl.plugin).__module__)
        package = packages.get(impl.plugin_name) or package_of_module(module)
        origin = Origin(plugin=impl.plugin_name, package=package)
        mine: list[_Claim] = []

        def register(kind: str, name: str, factory: Callable[..., Any], override: bool = False,
                     _origin: Any = origin, _mine: list[_Claim] = mine, _builtin: bool = builtin,
                     _label: str = f"plugin {impl.plugin_name!r} ({package})") -> None:
            get_registry(kind)  # an unknown kind fails inside the plugin's own call
            _mine.append(_Claim(kind, name, factory, _origin, override, _builtin, _label))

        try:
            impl.function(register=register)
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            if builtin:
                raise  # a broken built-in is an erckit bug, not a plugin problem
            _warn(f"plugin {impl.plugin_name!r} ({package})", error)
            continue
        claims.extend(mine)
    return claims


def _claims_from_registry_entry_points() -> list[_Claim]:
    claims: list[_Claim] = []
    for kind, registry in REGISTRIES.items():
        group = registry.entry_point_group
        for entry_point in _entry_points(group):
            if not _should_load(entry_point):
                continue
            try:
                factory = entry_point.load()
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                _warn(_describe(entry_point), error)
                continue
            origin = Origin(plugin=f"entry point {group}", package=_dist_label(entry_point))
            claims.append(_Claim(kind, entry_point.name, factory, origin, False, False, _describe(entry_point)))
            info = _info(entry_point, f"entry point {group}")
            if info not in _infos:
                _infos.append(info)
    return claims


def _register_claims(claims: list[_Claim]) -> None:
    """Register every claim that no other claim contests; report the rest, naming both sides.

    Order never decides: a built-in name stays built-in, an ``override=True`` claim
    replaces the plain ones, and a name two plugins claim plainly is used by neither
    (so a plugin cannot run its code in place of another's by loading first).
    """
    by_name: dict[tuple[str, str], list[_Claim]] = {}
    for claim in claims:
        try:
            check_name(claim.kind, claim.name)
            check_factory(claim.kind, claim.name, claim.factory)
        except ErckitError as error:
            if claim.builtin:
                raise
            message = f"{claim.label}: {error}; skipped"
            if claim.kind in REGISTRIES and isinstance(claim.name, str):
                REGISTRIES[claim.kind].refused[claim.name] = message
            report_plugin_problem(message)
            continue
        same = by_name.setdefault((claim.kind, claim.name), [])
        if not any(c.factory is claim.factory for c in same):
            same.append(claim)
    for (kind, name), contenders in by_name.items():
        registry = get_registry(kind)
        builtin = next((c for c in contenders if c.builtin), None)
        overrides = [c for c in contenders if c.override and not c.builtin]
        plain = [c for c in contenders if not c.override and not c.builtin]
        if len(overrides) == 1:
            winner, skipped = overrides[0], []
            replaced = builtin or (plain[0] if plain else None)
            if replaced is not None:
                registry.overrides[name] = replaced.origin
        elif builtin is not None:
            winner, skipped = builtin, overrides + plain
        elif len(plain) == 1 and not overrides:
            winner, skipped = plain[0], []
        else:
            first, second = (overrides or plain)[:2]
            registry.refused[name] = duplicate_message(kind, name, first.origin, second.origin, both=True) + "; neither is used"
            report_plugin_problem(registry.refused[name])
            continue
        for claim in skipped:
            report_plugin_problem(duplicate_message(kind, name, winner.origin, claim.origin) + "; skipped")
        try:
            registry.register(name, func=winner.factory, origin=winner.origin)
        except ErckitError as error:  # registered from code before plugins loaded
            if winner.builtin:
                raise
            report_plugin_problem(f"{error}; skipped")


def loaded_plugins() -> list[PluginInfo]:
    """Every plugin loaded so far, built-ins first."""
    load_plugins()
    return list(_infos)


def failed_plugins() -> list[str]:
    """One message per plugin that failed to load."""
    load_plugins()
    return list(_failures)


def reset_plugins() -> None:
    """Forget loaded plugins and every registration (tests use this); the next lookup loads again."""
    global _manager, _loaded
    with _lock:
        for registry in REGISTRIES.values():
            for name in list(registry.origins):
                registry.unregister(name)
            registry.refused.clear()
            registry.overrides.clear()
        _manager = None
        _loaded = False
        _infos.clear()
        _failures.clear()


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)


def _dist_label(entry_point: metadata.EntryPoint) -> str:
    dist = entry_point.dist
    return f"{dist.name} {dist.version}" if dist is not None else "?"


def _describe(entry_point: metadata.EntryPoint) -> str:
    return f"plugin {entry_point.name!r} ({_dist_label(entry_point)}, {entry_point.value})"


def _info(entry_point: metadata.EntryPoint, source: str) -> PluginInfo:
    dist = entry_point.dist
    return PluginInfo(
        entry_point.name,
        dist.name if dist is not None else "?",
        dist.version if dist is not None else "?",
        source,
    )


def _version(dist_name: str) -> str:
    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return "unknown"


set_plugin_loader(load_plugins)
