"""``export_model``: an ``ERCModel`` -> a directory of ONNX graphs + what preprocessing needs.

Layout of the exported directory::

    manifest.json          format, precision, opset, every graph's inputs, a sha256 per file
    config.json            the model's own config (labels, encoders, fuser, preprocessing)
    encoders/<name>/       each encoder's assets (tokenizer, feature extractor, backbone config)
    graphs/<name>.onnx     each encoder used for prediction: collated features -> embedding, logits
    graphs/fuser.onnx      (with a fuser in use) every encoder's embedding, logits, presence -> logits

The exporter is ``torch.onnx.export(..., dynamo=True)`` (torch.export, then ONNX Script): it
captures the shape arithmetic of Hugging Face models symbolically (mask positions, frame counts,
padding), where the TorchScript tracer (``dynamo=False``) bakes the example's sizes into the
graph and gives wrong answers at other lengths (measured: 0.12 on a tiny RoBERTa teacher, and a
crash on data2vec-audio). Every graph is then run in ONNX Runtime on a second batch of other
sizes and compared with PyTorch; a graph that differs by more than ``CHECK_TOLERANCE`` is refused.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import ErckitError, UsageError
from .manifest import FORMAT, FORMAT_VERSION, GRAPHS, MANIFEST_FILE, checksums, require

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ..model import ERCModel

CHECK_TOLERANCE = 1e-4  # max |ONNX - PyTorch| of any output on the check batch, fp32
OUTPUTS = ("erckit_embedding", "erckit_logits")  # prefixed: HF graphs have their own "embeddings"
FUSER_OUTPUT = "erckit_fused_logits"
# Only the linear layers (MatMul/Gemm) are quantized: convolutions (audio front ends, patch
# embeddings) and embedding lookups stay fp32.
INT8_OPS = ["MatMul", "Gemm"]
# A scale per output channel, not one per weight matrix: on a MiniLM teacher over MELD test it
# kept 97.9% of fp32's labels instead of 92.7% (weighted F1 +0.001 instead of -0.004) at the
# same speed (bench/RESULTS.md).
INT8_PER_CHANNEL = True


def prediction_names(model: "ERCModel") -> list[str]:
    """The encoders prediction runs, in order (as ``erckit.predict.Predictor`` picks them)."""
    return list(model.encoders) if model.use_fuser and model.fuser is not None else [model.anchor]


def check_output(output: Path, force: bool) -> None:
    """Refuse an output that cannot be written, before any work is done."""
    if output.exists() and not output.is_dir():
        raise ErckitError(f"output {output} exists and is not a directory")
    if output.exists() and any(output.iterdir()) and not force:
        raise ErckitError(f"output {output} already exists and is not empty; choose another -o or pass --force to replace it")
    parent = output.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ErckitError(f"cannot write {output}: {parent} is not a writable directory")


def export_model(
    model: "ERCModel", output: str | Path, *, quantize: str | None = None, opset: int | None = None, force: bool = False
) -> Path:
    """Write ``model`` as an ONNX export directory at ``output`` (atomically: all of it or nothing)."""
    from ..fileio import atomic_directory

    require("onnx", "onnxruntime", "onnxscript")
    if quantize not in (None, "int8"):
        raise UsageError(f"unknown quantization {quantize!r}; the one supported is int8")
    output = Path(output)
    check_output(output, force)
    model = model.eval()
    names = prediction_names(model)
    graphs: dict[str, Any] = {}
    with atomic_directory(output, replace=force) as staging:
        (staging / GRAPHS).mkdir()
        for name in names:
            encoder = model.encoders[name]
            what = f"encoder {name!r} ({model.config.encoders[name].factory})"
            trace, check = _examples(encoder, what)
            graphs[name] = _export_encoder(encoder, name, trace, check, staging / GRAPHS / f"{name}.onnx", opset, what)
            target = staging / "encoders" / name
            target.mkdir(parents=True, exist_ok=True)
            encoder.save_assets(target)
        fuser = None
        if model.fuser is not None and model.use_fuser:
            what = f"fuser ({model.config.fuser.factory if model.config.fuser else type(model.fuser).__name__})"
            fuser = _export_fuser(model, names, staging / GRAPHS / "fuser.onnx", opset, what)
        config = json.dumps(model.config.to_json_dict(), indent=2, ensure_ascii=False)
        (staging / "config.json").write_text(config + "\n", encoding="utf-8")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "precision": "fp32",
            "opset": _opset(staging / GRAPHS / f"{names[0]}.onnx"),
            "encoders": graphs,
            "fuser": fuser,
        }
        if quantize == "int8":
            _quantize_graphs(staging, manifest)
        _write_manifest(staging, manifest)
    return output


def quantize_export(source: str | Path, output: str | Path, *, force: bool = False) -> Path:
    """An int8 copy of the fp32 export at ``source`` (checked first), written atomically at ``output``."""
    import shutil

    from ..errors import ModelLoadError
    from ..fileio import atomic_directory
    from .manifest import read_manifest

    require("onnx", "onnxruntime")
    source, output = Path(source), Path(output)
    manifest = read_manifest(source)
    if manifest["precision"] != "fp32":
        raise ModelLoadError(f"{source} is already {manifest['precision']}; quantize an fp32 export")
    check_output(output, force)
    with atomic_directory(output, replace=force) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        _quantize_graphs(staging, manifest)
        _write_manifest(staging, manifest)
    return output


def _write_manifest(staging: Path, manifest: dict[str, Any]) -> None:
    manifest = {**manifest, "files": checksums(staging)}
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


# ------------------------------------------------------------------ encoders


def _examples(encoder: Any, what: str) -> tuple[dict[str, "Tensor"], dict[str, "Tensor"]]:
    try:
        trace, check = encoder.export_examples()
    except ErckitError as error:
        raise ErckitError(f"{what} cannot be exported to ONNX: {error}") from None
    except Exception as error:  # noqa: BLE001 - a plugin's featurize on made-up samples
        from ..modeldir import one_line

        raise ErckitError(
            f"{what} cannot be exported to ONNX: making example inputs failed ({type(error).__name__}: {one_line(error)}); "
            "the encoder can define export_examples() to give its own"
        ) from None
    if set(trace) != set(check) or not trace:
        raise ErckitError(f"{what}: export_examples() must give two batches with the same (non-empty) keys")
    return dict(trace), dict(check)


def _dynamic_axes(trace: Mapping[str, "Tensor"], check: Mapping[str, "Tensor"]) -> dict[str, dict[int, str]]:
    """Axes whose size differs between the two example batches; axis 0 is "batch"."""
    axes: dict[str, dict[int, str]] = {}
    for key, tensor in trace.items():
        other = check[key]
        if tensor.dim() != other.dim():
            raise ErckitError(f"export examples: {key!r} has {tensor.dim()} dims in one batch and {other.dim()} in the other")
        axes[key] = {
            axis: "batch" if axis == 0 else f"{key}_{axis}"
            for axis in range(tensor.dim())
            if tensor.shape[axis] != other.shape[axis]
        }
    return axes


def _encoder_module(encoder: Any, keys: Sequence[str]) -> "nn.Module":
    """``encoder.forward`` on positional tensors (the graph's inputs, in ``keys`` order) -> (embedding, logits)."""
    from torch import nn

    class EncoderGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, *tensors: "Tensor") -> tuple["Tensor", "Tensor"]:
            output = self.encoder(dict(zip(keys, tensors)))
            return output.embedding, output.logits

    return EncoderGraph().eval()


def _export_encoder(
    encoder: Any, name: str, trace: dict[str, "Tensor"], check: dict[str, "Tensor"], path: Path, opset: int | None, what: str
) -> dict[str, Any]:
    import torch

    keys = list(trace)
    axes = _dynamic_axes(trace, check)
    module = _encoder_module(encoder, keys)
    _to_onnx(module, tuple(trace[k] for k in keys), keys, list(OUTPUTS), axes, path, opset, what)
    with torch.inference_mode():
        expected = module(*(check[k] for k in keys))
    inputs = _check(path, {k: check[k] for k in keys}, dict(zip(OUTPUTS, expected)), what)
    return {"graph": f"{GRAPHS}/{path.name}", "inputs": inputs, "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in axes.items() if v}}


def _to_onnx(
    module: "nn.Module", args: tuple, input_names: list[str], output_names: list[str],
    axes: Mapping[str, Mapping[int, str]], path: Path, opset: int | None, what: str,
) -> None:
    import torch

    from ..modeldir import one_line

    dims = tuple({axis: torch.export.Dim.DYNAMIC for axis in axes.get(k, {})} or None for k in input_names)
    try:
        with warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module, args, dynamo=True, input_names=input_names, output_names=output_names,
                dynamic_shapes={"tensors": dims}, opset_version=opset,  # both wrappers take *tensors
                external_data=False, verbose=False,
            )
        program.save(str(path), external_data=False)
    except ErckitError:
        raise
    except Exception as error:  # noqa: BLE001 - the exporter's failures name ops and frames, several lines each
        raise ErckitError(f"{what} cannot be exported to ONNX: {type(error).__name__}: {one_line(error, 500)}") from None


def _quiet() -> Any:
    """torch.onnx prints its progress (and torch.export its graphs) to stdout/stderr; keep the CLI's output its own."""
    import contextlib
    import io

    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def _check(path: Path, feeds: Mapping[str, "Tensor"], expected: Mapping[str, "Tensor"], what: str) -> list[str]:
    """Run the graph in ONNX Runtime on ``feeds``; refuse it if it differs from ``expected``. Returns its input names."""
    import numpy as np

    session = session_for(path)
    inputs = [i.name for i in session.get_inputs()]
    results = session.run(list(expected), {name: feeds[name].numpy() for name in inputs})
    for (output, want), got in zip(expected.items(), results):
        want = want.float().numpy()
        if got.shape != want.shape:
            raise ErckitError(f"{what}: the exported graph gives {output} of shape {got.shape}, PyTorch {want.shape}")
        difference = float(np.abs(got - want).max()) if want.size else 0.0
        if not difference <= CHECK_TOLERANCE:
            raise ErckitError(
                f"{what}: the exported graph differs from PyTorch by {difference:.3g} (> {CHECK_TOLERANCE}) on a batch "
                "of other sizes than the one it was traced on; its forward depends on input sizes in a way the "
                "exporter cannot capture"
            )
    return inputs


def session_for(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session; ``threads`` intra-op threads, by default as many as torch uses.

    Not ONNX Runtime's own default (0: it picks): on the 2-core machine of bench/RESULTS.md that ran
    MiniLM 2.5x slower than 2 explicit threads, and slower than even 1.
    """
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = threads if threads is not None else torch.get_num_threads()
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------- fuser


def fuser_inputs(names: Sequence[str]) -> list[str]:
    """The fuser graph's inputs: per encoder its embedding, logits and presence, in ``names`` order."""
    return [f"{name}__{part}" for name in names for part in ("embedding", "logits", "present")]


def _export_fuser(
    model: "ERCModel", names: list[str], path: Path, opset: int | None, what: str
) -> dict[str, Any]:
    import torch
    from torch import nn

    from ..components import ModalityOutput

    class FuserGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: "Tensor") -> "Tensor":
            outputs = {
                name: ModalityOutput(*tensors[3 * i : 3 * i + 3]) for i, name in enumerate(names)
            }
            return self.model.fuse(outputs)

    generator = torch.Generator().manual_seed(0)

    def batch(rows: int) -> dict[str, "Tensor"]:
        """Random embeddings and logits for ``rows`` samples; every other row absent, except the anchor's."""
        feeds: dict[str, Tensor] = {}
        for name in names:
            dim = model.encoders[name].dim
            present = torch.ones(rows, dtype=torch.bool) if name == model.anchor else torch.arange(rows) % 2 == 0
            embedding = torch.randn(rows, dim, generator=generator)
            logits = torch.randn(rows, model.num_classes, generator=generator)
            feeds.update(zip(fuser_inputs([name]), (embedding, logits, present)))
        return feeds

    trace, check = batch(2), batch(5)
    module = FuserGraph().eval()
    inputs = fuser_inputs(names)
    axes = {key: {0: "batch"} for key in inputs}
    _to_onnx(module, tuple(trace[k] for k in inputs), inputs, [FUSER_OUTPUT], axes, path, opset, what)
    with torch.inference_mode():
        expected = module(*(check[k] for k in inputs))
    used = _check(path, check, {FUSER_OUTPUT: expected}, what)
    return {"graph": f"{GRAPHS}/{path.name}", "inputs": used}


# ---------------------------------------------------------------------- int8


def _quantize_graphs(staging: Path, manifest: dict[str, Any]) -> None:
    for path in sorted((staging / GRAPHS).glob("*.onnx")):
        _quantize(path)
    import onnxruntime

    manifest["precision"] = "int8"
    manifest["quantization"] = {
        "method": f"onnxruntime {onnxruntime.__version__} quantize_dynamic",
        "operators": INT8_OPS,
        "weights": "int8, symmetric, " + ("a scale per output channel" if INT8_PER_CHANNEL else "one scale per tensor"),
        "activations": "uint8, one scale per tensor, computed per batch at run time",
    }


def _quantize(path: Path) -> None:
    """ONNX Runtime's dynamic int8 quantization of the linear layers (weights per channel), in place."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    staged = path.with_suffix(".prep.onnx")
    quantized = path.with_suffix(".int8.onnx")
    try:
        quant_pre_process(str(path), str(staged), skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - pre-processing only helps; quantize the graph as it is
        staged = path
    quantize_dynamic(str(staged), str(quantized), weight_type=QuantType.QInt8, op_types_to_quantize=INT8_OPS,
                     per_channel=INT8_PER_CHANNEL)
    os.replace(quantized, path)
    if staged != path:
        staged.unlink()


def _opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
