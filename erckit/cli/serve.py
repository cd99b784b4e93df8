"""``erckit serve MODEL_DIR``: the model behind HTTP + WebSocket, with a page to try it (docs/serve.md)."""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

from ..errors import ErckitError, UsageError
from . import console as ui
from .arguments import positive_int

API_KEY_VARIABLE = "ERCKIT_API_KEY"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a model over HTTP and WebSocket, with a page to try it (needs erckit[serve])",
        description="Serve a model: POST /v1/predict (dialogues), WebSocket /v1/conversations (live, one "
        "utterance per message), GET /v1/model, /healthz, /metrics, and a page at /. Concurrent requests "
        "share forward passes (dynamic batching). See docs/serve.md.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="model directory (or a run directory holding model/)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--max-batch", type=positive_int, default=32, help="most utterances per forward pass (default 32; 1 turns batching off)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits for more requests (default 10)")
    parser.add_argument("--padding-slack", type=float, default=1.15, metavar="X",
                        help="split a batch where padding would exceed X times its real tokens (default 1.15; 0: never)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="compute precision (default fp32)")
    parser.add_argument("--api-key", help=f"require this key on every route but /healthz (default: ${API_KEY_VARIABLE} if set)")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow browser pages from this origin (repeatable; default: none)")
    parser.add_argument("--media-root", type=Path, help="allow media paths under this directory (default: inline media only)")
    parser.add_argument("--max-body-bytes", type=positive_int, default=8 * 1024 * 1024, help="largest request body or message (default 8 MiB)")
    parser.add_argument("--max-utterances", type=positive_int, default=512, help="most utterances per POST (default 512)")
    parser.add_argument("--max-text-chars", type=positive_int, default=4000, help="longest text or speaker name (default 4000)")
    parser.add_argument("--threads", type=positive_int, metavar="N", help="torch intra-op threads (default: torch's)")
    parser.add_argument("--access-log", action="store_true", help="log every request (uvicorn's access log)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="torch (default) or onnx: ONNX Runtime on an 'erckit export' directory (CPU, the export's precision)")
    parser.set_defaults(run=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: may resolve to anything


def run(args: argparse.Namespace) -> int:
    from ..serve import require_extra

    require_extra()
    from ..model import resolve_model_dir
    from .predict import check_backend, load_model

    check_backend(args)
    if args.backend == "torch":
        resolve_model_dir(args.model_dir)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {args.port}")
    if args.media_root is not None and not args.media_root.is_dir():
        raise ErckitError(f"--media-root {args.media_root} is not a directory")
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE) or None
    if not is_loopback(args.host) and api_key is None:
        ui.warning(f"binding {args.host} without an API key: anyone who can reach it can use the model "
                   f"(give --api-key or ${API_KEY_VARIABLE})")
    if args.threads is not None:  # torch's for featurize and collate; with --backend onnx ONNX Runtime's too
        import torch

        torch.set_num_threads(args.threads)
    from ..serve.app import ServeSettings, create_app
    from ..serve.inputs import Limits
    from ..serve.server import make_server

    model = load_model(args)
    limits = Limits(max_body_bytes=args.max_body_bytes, max_utterances=args.max_utterances,
                    max_text_chars=args.max_text_chars)
    settings = ServeSettings(
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, padding_slack=args.padding_slack or None,
        precision=args.precision, device=args.device,
        api_key=api_key, cors_origins=tuple(args.cors_origin), media_root=args.media_root, limits=limits,
    )
    app = create_app(model, settings)
    ui.console.print(f"serving {ui.escape(str(args.model_dir))} ({ui.escape(', '.join(model.labels))}); "
                     f"batches of up to {args.max_batch}, waiting {args.max_wait_ms:g} ms")
    # SIGINT/SIGTERM: uvicorn stops accepting, lets in-flight requests finish, then the app's shutdown stops the batcher.
    make_server(app, args.host, args.port, access_log=args.access_log).run()
    return 0
