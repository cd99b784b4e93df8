"""A real ``erckit serve`` server on a free loopback port, in a thread of the test process.

A module of its own (not conftest.py): test modules import it by name, and several
conftest modules share that name in one pytest run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from tiny_models import text_recipe


@contextlib.contextmanager
def running(model_dir: Path, **settings) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a server for the saved model, stopped (gracefully) on exit."""
    with serving(model_dir, **settings) as (url, _):
        yield url


@contextlib.contextmanager
def serving(model_dir: Path, model: Any = None, **settings) -> Iterator[tuple[str, Any]]:
    """``running``, also giving the app; ``model``: an already loaded one (an ``OnnxModel``) instead of ``model_dir``'s."""
    from erckit.model import ERCModel
    from erckit.serve.app import ServeSettings, create_app
    from erckit.serve.server import bound_port, make_server

    app = create_app(model if model is not None else ERCModel.from_pretrained(model_dir), ServeSettings(**settings))
    server = make_server(app, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{bound_port(server)}", app
    finally:
        server.should_exit = True
        thread.join(30)


def context_recipe(max_context: int | None) -> dict:
    recipe = text_recipe()
    recipe["data"]["max_context"] = max_context
    return recipe
