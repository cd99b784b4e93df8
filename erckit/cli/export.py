"""``erckit export MODEL_DIR -o EXPORT_DIR``: the model as ONNX graphs for ONNX Runtime (docs/export.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import console as ui
from .arguments import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX (fp32 or int8) for 'erckit predict --backend onnx'",
        description="Export every encoder prediction uses and the fuser to ONNX graphs with dynamic batch and "
        "length axes, beside the config, the encoders' preprocessing files and a manifest of checksums. "
        "Needs the extra: pip install 'erckit[onnx]'.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="model directory (or a run directory holding model/)")
    parser.add_argument("-o", "--output", required=True, metavar="EXPORT_DIR", help="directory to write (atomically)")
    parser.add_argument("--quantize", choices=("int8",), help="int8 weights for the linear layers (ONNX Runtime dynamic quantization)")
    parser.add_argument("--opset", type=positive_int, help="ONNX opset version (default: the exporter's)")
    parser.add_argument("--force", action="store_true", help="replace EXPORT_DIR if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..export.graphs import check_output, export_model
    from ..export.manifest import require
    from ..model import ERCModel, resolve_model_dir

    output = Path(args.output).expanduser()
    check_output(output, args.force)  # before the (long) load and export
    require("onnx", "onnxruntime", "onnxscript")
    resolve_model_dir(args.model_dir)
    model = ERCModel.from_pretrained(args.model_dir)
    with ui.console.status("exporting to ONNX"):
        export_model(model, output, quantize=args.quantize, opset=args.opset, force=args.force)
    ui.console.print(f"[green]wrote[/] {output} ({args.quantize or 'fp32'})")
    return 0
