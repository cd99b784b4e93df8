"""The ASGI app of ``erckit serve``: routes, API key, CORS, limits (docs/serve.md).

Everything CPU-heavy (tokenisation, media decoding, the forward pass) runs in
the batcher's inference thread; the event loop only parses requests, keeps each
WebSocket conversation's history and writes answers.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import __version__
from ..errors import ErckitError
from ..predict import ConversationState, Predictor, describe_dialogues, dialogue_samples
from .batcher import Batcher
from .inputs import Limits, MediaStore, RequestError, parse_dialogues, parse_turn
from .metrics import server_metrics

if TYPE_CHECKING:
    from ..model import ERCModel

API_KEY_HEADER = "x-api-key"
OPEN_PATHS = {"/healthz"}  # answered without the API key (a load balancer's probe has none)
POLICY_VIOLATION = 1008  # WebSocket close code
MESSAGE_TOO_BIG = 1009


@dataclass(frozen=True)
class ServeSettings:
    max_batch: int = 32
    max_wait_ms: float = 10.0
    # A micro-batch mixes short and long contexts; it is cut where padding would cost more than the
    # larger batch gains (1.15: at most 15% padding per pass; measured in bench/RESULTS.md).
    padding_slack: float | None = 1.15
    precision: str = "fp32"
    device: str | None = None
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    media_root: Path | None = None
    limits: Limits = field(default_factory=Limits)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


INPUT_KEYS = {"audio": "audio", "visual": "video"}  # a media spec's modality -> the utterance key holding its file


def model_media(predictor: Predictor) -> set[str]:
    """The input keys of the media the model's encoders read ("audio", "video"), whatever their spec
    (AudioSpec, VideoSpec, or an encoder's own DecoderSpec)."""
    return {INPUT_KEYS[encoder.media.modality] for encoder in predictor.encoders.values() if encoder.media is not None}


class Service:
    """The one model in memory, its batcher and metrics: what every route uses."""

    def __init__(self, model: "ERCModel", settings: ServeSettings):
        self.model = model
        self.settings = settings
        # Predictor.run's own batch size is max_batch: a batch the batcher forms is one forward pass,
        # or a few when its lengths differ so much that padding would dominate (padding_slack).
        self.predictor = Predictor(model, batch_size=settings.max_batch, precision=settings.precision,
                                   device=settings.device, padding_slack=settings.padding_slack)
        self.metrics = server_metrics()
        self.batcher = Batcher(self.predictor, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms,
                               metrics=self.metrics)
        self.scratch = Path(tempfile.mkdtemp(prefix="erckit-serve-"))
        self.media = MediaStore(settings.media_root, model_media(self.predictor), self.scratch)
        self.page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    def close(self) -> None:
        self.batcher.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def answered(self, route: str, status: int, began: float) -> None:
        self.metrics.count("erckit_requests_total", route=route, status=str(status))
        self.metrics.observe("erckit_request_latency_seconds", time.perf_counter() - began, route=route)

    def description(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "labels": self.model.labels,
            "modalities": self.predictor.names,
            "media": sorted(self.media.modalities),
            "anchor": config.anchor,
            "use_fuser": config.use_fuser,
            "encoders": {name: table.factory for name, table in config.encoders.items()},
            "fuser": config.fuser.factory if config.fuser is not None else None,
            "components": dict(config.components),
            "max_context": self.predictor.max_context,
            "erckit_version": __version__,
            "limits": vars(self.settings.limits),
            "batching": {"max_batch": self.settings.max_batch, "max_wait_ms": self.settings.max_wait_ms,
                         "padding_slack": self.settings.padding_slack},
            "inline_media": True,
            "media_root": self.settings.media_root is not None,
        }


# ------------------------------------------------------------------ routes


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {declared} bytes; at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def predict(request: Request) -> Response:
    service: Service = request.app.state.service
    began = time.perf_counter()
    written: list[Path] = []
    try:
        body = await read_body(request, service.settings.limits.max_body_bytes)
        records, dialogues = parse_dialogues(body, request.headers.get("content-type", ""), service.settings.limits,
                                             service.media, written)
        samples = dialogue_samples(dialogues, service.predictor.max_context)
        probabilities, present = await service.batcher.predict(samples)
    except RequestError as error:
        service.answered("/v1/predict", error.status, began)
        return error_response(error.status, str(error))
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    results = describe_dialogues(service.predictor, dialogues, samples, probabilities, present)
    answer = []
    for record, dialogue, result in zip(records, dialogues, results):
        # The same object `erckit predict` writes per line: the input, each utterance with its prediction.
        turns = [{**turn, **p.output_fields()} for turn, p in zip(record["utterances"], result.utterances)]
        answer.append({"id": dialogue.id, **record, "utterances": turns})
    service.metrics.count("erckit_utterances_total", len(samples))
    service.answered("/v1/predict", 200, began)
    return JSONResponse({"dialogues": answer})


async def conversation(websocket: WebSocket) -> None:
    """A live conversation: one utterance per message in, its prediction out, history kept per connection."""
    service: Service = websocket.app.state.service
    if not _origin_allowed(websocket, service.settings.cors_origins):
        await websocket.close(code=POLICY_VIOLATION, reason="origin not allowed")
        return
    await websocket.accept()
    state = ConversationState(service.predictor.context_window)
    number = 0
    # One message at a time per connection (the next is read once this one is answered), which
    # lets the batcher know when every open conversation is already in its queue.
    with service.batcher.conversation():
        while True:
            try:
                message = await websocket.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            number += 1
            content = message.get("text") if message.get("text") is not None else message.get("bytes") or b""
            answer = await _answer_turn(service, state, content, number)
            try:
                await websocket.send_text(json.dumps(answer, ensure_ascii=False))
            except (WebSocketDisconnect, RuntimeError):  # the client left before its answer: nothing to do
                return


async def _answer_turn(service: Service, state: ConversationState, content: str | bytes, number: int) -> dict[str, Any]:
    """One WebSocket message's answer: its prediction, or the error that refused it (the history unchanged)."""
    began = time.perf_counter()
    limits = service.settings.limits
    written: list[Path] = []
    try:
        if len(content) > limits.max_body_bytes:
            raise RequestError(413, f"message {number} is over {limits.max_body_bytes} bytes")
        dialogue_id, utterance = parse_turn(content, number, limits, service.media, written)
        if dialogue_id not in state.positions and len(state.positions) >= limits.max_conversations:
            raise RequestError(422, f"message {number}: at most {limits.max_conversations} dialogues per connection")
        sample = state.add(dialogue_id, utterance)
        probabilities, present = await service.batcher.predict([sample], turn=True)
    except RequestError as error:
        service.answered("/v1/conversations", error.status, began)
        return {"error": str(error), "status": error.status, "message": number}
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    p = service.predictor.describe(sample, probabilities[0], present[0], utterance)
    service.metrics.count("erckit_utterances_total")
    service.answered("/v1/conversations", 200, began)
    return {"dialogue": p.dialogue_id, "position": p.position, "speaker": p.speaker, "text": p.text, **p.output_fields()}


def _origin_allowed(websocket: WebSocket, origins: tuple[str, ...]) -> bool:
    """Browsers send any page's Origin on a WebSocket (CORS does not cover them): only ours or the allowed ones."""
    origin = websocket.headers.get("origin")
    if origin is None or "*" in origins or origin in origins:
        return True
    return urlsplit(origin).netloc == websocket.headers.get("host")


async def model_info(request: Request) -> Response:
    return JSONResponse(request.app.state.service.description())


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    return PlainTextResponse(request.app.state.service.metrics.render(), media_type="text/plain; version=0.0.4")


async def page(request: Request) -> Response:
    # Everything the page needs is inline; the policy keeps it from loading anything from elsewhere.
    policy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"
    return HTMLResponse(request.app.state.service.page, headers={"Content-Security-Policy": policy})


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return error_response(error.status_code, str(error.detail))


async def server_error(request: Request, error: Exception) -> Response:
    """A failure of the server's own (the model gave NaN scores, a bug): 500, still as JSON."""
    request.app.state.service.metrics.count("erckit_requests_total", route=request.url.path, status="500")
    message = str(error) if isinstance(error, ErckitError) else f"internal error: {type(error).__name__}"
    return error_response(500, message)


# ---------------------------------------------------------------- API key


class RequireApiKey:
    """Every route but ``OPEN_PATHS`` needs the key: ``Authorization: Bearer KEY``, ``X-API-Key`` or ``?api_key=``.

    The query parameter is for what a browser cannot give headers to: the page
    itself and its WebSocket.
    """

    def __init__(self, app: Any, key: str):
        self.app = app
        self.key = key.encode("utf-8")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS or self._granted(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": "API key required"})
            return
        response = error_response(401, "missing or wrong API key (Authorization: Bearer KEY, or X-API-Key: KEY)")
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)

    def _granted(self, scope: dict) -> bool:
        given: list[bytes] = []
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                given.append(value[7:].strip())
            elif name == API_KEY_HEADER.encode():
                given.append(value.strip())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given += [v.encode("utf-8") for v in query.get("api_key", [])]
        return any(hmac.compare_digest(candidate, self.key) for candidate in given)


# -------------------------------------------------------------------- app


def create_app(model: "ERCModel", settings: ServeSettings | None = None) -> Starlette:
    """The server for ``model``; its inference thread runs from the app's startup to its shutdown."""
    settings = settings or ServeSettings()
    service = Service(model, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.batcher.start()
        try:
            yield
        finally:
            service.close()  # after uvicorn let in-flight requests finish

    middleware = []
    if settings.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", API_KEY_HEADER],
        ))
    if settings.api_key:
        middleware.append(Middleware(RequireApiKey, key=settings.api_key))  # inside CORS: preflights need no key
    app = Starlette(
        routes=[
            Route("/", page),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route("/v1/model", model_info),
            Route("/v1/predict", predict, methods=["POST"]),
            WebSocketRoute("/v1/conversations", conversation),
        ],
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.service = service
    return app
