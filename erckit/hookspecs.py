"""The pluggy hooks an erckit plugin can implement (project name ``erckit``).

A plugin is any module or object exposing functions marked with
``erckit.hookimpl``; it is found through the entry-point group ``erckit``::

    [project.entry-points.erckit]
    myplugin = "my_package.plugin"

Built-in components are registered by built-in plugins through these same hooks.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import pluggy

hookspec = pluggy.HookspecMarker("erckit")


@hookspec
def register_components(register: Callable[..., None]) -> None:
    """Register factories: ``register(kind, name, factory, override=False)``.

    ``kind`` names one of the registries in ``erckit.registry.REGISTRIES``
    ('encoders', 'distillers', 'fusers', 'datasets', 'stages', 'objectives',
    'optimizers', 'schedulers', 'loggers'); ``name`` is 'namespace.Name.vN'. A name
    another package also registers is used by neither (a built-in name stays
    built-in) unless exactly one of them passes ``override=True``.
    """


@hookspec
def register_commands(add_command: Callable[..., None]) -> None:
    """Add CLI sub-commands: ``add_command(name, help, configure, run)``.

    ``configure(parser)`` adds arguments to an ``argparse.ArgumentParser``;
    ``run(args)`` executes the command and returns an exit code (or None for 0).
    A name taken by a built-in or another plugin's command is skipped with a warning.
    """


@hookspec
def on_train_start(run: Any) -> None:
    """Training begins. ``run`` is an ``erckit.train.RunInfo`` (directory, recipe, rank)."""


@hookspec
def on_stage_start(run: Any, stage: str, kind: str) -> None:
    """A stage begins: ``stage`` is its name in the recipe, ``kind`` its stage kind's registered name (``erckit.Supervised.v1``)."""


@hookspec
def on_epoch_end(run: Any, stage: str, epoch: int, metrics: Mapping[str, float]) -> None:
    """An epoch ended; ``metrics`` holds train loss and dev metrics (rank 0 only)."""


@hookspec
def on_stage_end(run: Any, stage: str, metrics: Mapping[str, float]) -> None:
    """A stage ended; ``metrics`` are those of its selected (best dev) epoch."""


@hookspec
def on_train_end(run: Any, metrics: Mapping[str, float]) -> None:
    """Training ended and the model directory is written."""
