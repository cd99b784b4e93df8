"""The uvicorn server for an ``erckit serve`` app, configured the same way by the CLI, the tests and the bench."""

from __future__ import annotations

from typing import Any

import uvicorn

GRACEFUL_SECONDS = 30  # on SIGTERM, how long in-flight requests may take to finish


def make_server(app: Any, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = False,
                log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for ``create_app``'s app: WebSocket messages capped at the body limit.

    ``port=0`` picks a free port; ``bound_port(server)`` tells which once it started.
    """
    settings = app.state.service.settings
    config = uvicorn.Config(
        app, host=host, port=port, access_log=access_log, log_level=log_level, lifespan="on",
        ws="websockets-sansio", ws_max_size=settings.limits.max_body_bytes, timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    return uvicorn.Server(config)


def bound_port(server: uvicorn.Server) -> int:
    return server.servers[0].sockets[0].getsockname()[1]
