"""Plugin discovery: built-in plugins, then every installed ``erckit`` entry point.

Built-ins go through exactly the path a third-party plugin does. Set
``ERCKIT_DISABLE_PLUGIN_AUTOLOAD=1`` to load only the built-ins (tests do), and
``ERCKIT_PLUGINS=name1,name2`` to load chosen entry points (by entry-point or
distribution name) anyway.
A plugin that fails to import costs one warning naming it; the rest still loads.
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

PROJECT = "erckit"
ENTRY_POINT_GROUP = "erckit"
AUTOLOAD_ENV = "ERCKIT_DISABLE_PLUGIN_AUTOLOAD"
SELECT_ENV = "ERCKIT_PLUGINS"

hookimpl = pluggy.HookimplMarker(PROJECT)

BUILTIN_PLUGINS = (
    "erckit.builtin.components",
    "erckit.builtin.datasets",
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


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every plugin loaded."""
    load_plugins()
    assert _manager is not None
    return _manager


def load_plugins() -> None:
    """Discover and register all plugins once per process (idempotent, thread-safe)."""
    global _manager
    if _manager is not None:
        return
    with _lock:
        if _manager is not None:
            return
        manager = pluggy.PluginManager(PROJECT)
        manager.add_hookspecs(hookspecs)
        for module_name in BUILTIN_PLUGINS:
            module = importlib.import_module(module_name)
            manager.register(module, name=module_name)
            _infos.append(PluginInfo(module_name, "erckit", _version("erckit"), "built-in"))
        for entry_point in _entry_points(ENTRY_POINT_GROUP):
            if not _should_load(entry_point) or manager.has_plugin(entry_point.name):
                continue
            label = _describe(entry_point)
            try:
                plugin = entry_point.load()
                manager.register(plugin, name=entry_point.name)
            except Exception as error:  # a broken plugin must not break erckit
                _warn(label, error)
                continue
            _infos.append(_info(entry_point, f"entry point {ENTRY_POINT_GROUP}"))
        _manager = manager
        _register_from_hooks(manager)
        _register_from_registry_entry_points()


def _register_from_hooks(manager: pluggy.PluginManager) -> None:
    from .registry import Origin, get_registry, package_of_module

    # Each implementation is called on its own so the table can say which
    # plugin registered which component.
    for impl in manager.hook.register_components.get_hookimpls():
        module = getattr(impl.plugin, "__name__", type(impl.plugin).__module__)
        origin = Origin(plugin=impl.plugin_name, package=package_of_module(module))

        def register(kind: str, name: str, factory: Callable[..., Any], _origin=origin) -> None:
            get_registry(kind).register(name, func=factory, origin=_origin)

        try:
            impl.function(register=register)
        except Exception as error:
            if impl.plugin_name in BUILTIN_PLUGINS:
                raise  # a broken built-in is an erckit bug, not a plugin problem
            _warn(f"plugin {impl.plugin_name!r}", error)


def _register_from_registry_entry_points() -> None:
    from .registry import REGISTRIES, Origin

    for kind, registry in REGISTRIES.items():
        group = f"{PROJECT}_{kind}"
        for entry_point in _entry_points(group):
            if not _should_load(entry_point):
                continue
            try:
                factory = entry_point.load()
                package = _dist_label(entry_point)
                registry.register(
                    entry_point.name, func=factory, origin=Origin(plugin=f"entry point {group}", package=package)
                )
            except Exception as error:
                _warn(_describe(entry_point), error)
                continue
            info = _info(entry_point, f"entry point {group}")
            if info not in _infos:
                _infos.append(info)


def loaded_plugins() -> list[PluginInfo]:
    """Every plugin loaded so far, built-ins first."""
    load_plugins()
    return list(_infos)


def failed_plugins() -> list[str]:
    """One message per plugin that failed to load."""
    load_plugins()
    return list(_failures)


def reset_plugins() -> None:
    """Forget loaded plugins and entry-point registrations (tests use this)."""
    global _manager
    from .registry import REGISTRIES

    with _lock:
        for registry in REGISTRIES.values():
            for name in list(registry.origins):
                import catalogue

                catalogue.REGISTRY.pop((*registry.namespace, name), None)
            registry.origins.clear()
        _manager = None
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
