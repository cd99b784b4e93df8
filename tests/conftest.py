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
