"""``erckit serve``: one model behind HTTP and WebSocket, with dynamic micro-batching (docs/serve.md).

Needs the ``serve`` extra (Starlette, uvicorn): ``pip install "erckit[serve]"``.
``create_app(model, ServeSettings(...))`` is the ASGI app; ``require_extra()``
names the missing pieces of the extra in one line.
"""

from __future__ import annotations

import importlib.util

from ..errors import ErckitError

EXTRA_MODULES = ("starlette", "uvicorn", "websockets")


def require_extra() -> None:
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ErckitError(f'erckit serve needs {", ".join(missing)}, which are not installed: pip install "erckit[serve]"')
