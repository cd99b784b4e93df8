"""Test-wide settings: no network, no stray plugins.

Plugin autoload is off so tests see only erckit's built-ins plus the project's
own plugins, named explicitly, whatever else is installed on the machine.
"""

from __future__ import annotations

import os

os.environ["ERCKIT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ["ERCKIT_PLUGINS"] = "telme,erckit-example"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402  (after the environment is set)


@pytest.fixture
def registered():
    """``registered(kind, name, factory)``: a component registered for one test, forgotten after it."""
    from erckit import registry

    added = []

    def add(kind: str, name: str, factory):
        target = registry.get_registry(kind)
        target.register(name, func=factory)
        added.append((target, name))

    yield add
    for target, name in added:
        target.unregister(name)
