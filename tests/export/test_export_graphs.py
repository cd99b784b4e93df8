"""``export_model`` + ``OnnxModel``: ONNX fp32 and int8 against PyTorch on demo dialogues, every component shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from export_models import LABELS, RECIPES, SLOW, bow_pair_recipe
from erckit.errors import ErckitError
from erckit.export.graphs import export_model, quantize_export
from erckit.export.runtime import OnnxModel
from tiny_models import build_model

FP32_TOLERANCE = 1e-4  # max |p_onnx - p_torch| over every probability
INT8_TOLERANCE = 0.02  # the same for int8 graphs (measured 0.001-0.005 on these tiny random models)


def probabilities(results: list[Any]) -> torch.Tensor:
    return torch.tensor([[u.probabilities[label] for label in LABELS] for d in results for u in d.utterances])


def predicted(model: Any, dialogues: list[Any], **options: Any) -> list[Any]:
    return model.predict(dialogues, batch_size=options.pop("batch_size", 4), **options)


def shapes(names: list[str]) -> list[Any]:
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in names]


@pytest.mark.parametrize("name", shapes(list(RECIPES)))
def test_fp32_probabilities_match_pytorch(name: str, models, exported, dialogues) -> None:
    reference = predicted(models[name], dialogues)
    onnx = OnnxModel.load(exported[name])
    results = predicted(onnx, dialogues)
    difference = (probabilities(results) - probabilities(reference)).abs().max().item()
    assert difference <= FP32_TOLERANCE, f"{name}: max abs difference {difference}"
    flat = [(u.label, u.modalities_used, u.missing) for d in results for u in d.utterances]
    assert flat == [(u.label, u.modalities_used, u.missing) for d in reference for u in d.utterances]
    if name in ("telme", "builtin"):  # the demo has utterances without video: the missing-modality path ran
        assert any(u.missing for d in results for u in d.utterances)
    if name == "concat":  # serve --threads: ONNX Runtime's intra-op threads
        assert all(s.get_session_options().intra_op_num_threads == 1 for s in OnnxModel.load(exported[name], threads=1).sessions.values())
    # Dynamic batch and length axes: other batch sizes give the same answers.
    for batch_size in (1, 7):
        other = probabilities(predicted(onnx, dialogues, batch_size=batch_size))
        assert (other - probabilities(results)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", shapes(["teacher", "telme", "builtin"]))
def test_int8_stays_within_the_stated_tolerance(name: str, models, exported, dialogues, tmp_path: Path) -> None:
    import onnx

    int8 = quantize_export(exported[name], tmp_path / "int8")
    manifest = json.loads((int8 / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    for graph in ["fuser", *manifest["encoders"]] if manifest["fuser"] else manifest["encoders"]:
        loaded = onnx.load(str(int8 / "graphs" / f"{graph}.onnx"))
        ops = {node.op_type for node in loaded.graph.node}
        assert "DynamicQuantizeLinear" in ops and "MatMulInteger" in ops, graph  # its linear layers are int8
        # weights quantized per output channel: a zero point per column of each weight matrix
        shapes = {i.name: list(i.dims) for i in loaded.graph.initializer}
        for node in (n for n in loaded.graph.node if n.op_type == "MatMulInteger"):
            weight, zero_point = shapes[node.input[1]], shapes[node.input[3]]
            assert zero_point == weight[-1:], (graph, node.name, weight, zero_point)
    assert "per output channel" in manifest["quantization"]["weights"]
    reference = probabilities(predicted(models[name], dialogues))
    got = probabilities(predicted(OnnxModel.load(int8), dialogues))
    assert (got - reference).abs().max().item() <= INT8_TOLERANCE
    assert (got - reference).abs().max().item() > 0  # it did quantize


@pytest.mark.slow
def test_manifest_describes_the_graphs(exported) -> None:
    manifest = json.loads((exported["telme"] / "manifest.json").read_text())
    assert manifest["format"] == "erckit.onnx" and manifest["precision"] == "fp32" and manifest["opset"] >= 17
    text = manifest["encoders"]["text"]
    assert text["graph"] == "graphs/text.onnx" and text["inputs"] == ["input_ids", "attention_mask"]
    assert text["dynamic_axes"]["input_ids"] == {"0": "batch", "1": "input_ids_1"}
    assert manifest["encoders"]["visual"]["dynamic_axes"] == {"pixels": {"0": "batch"}}  # frames and size are fixed
    assert manifest["fuser"]["graph"] == "graphs/fuser.onnx"
    files = set(manifest["files"])
    assert {"config.json", "graphs/text.onnx", "graphs/fuser.onnx", "encoders/text/tokenizer.json"} <= files
    assert "manifest.json" not in files


def test_an_encoder_that_cannot_be_exported_is_named(tmp_path: Path) -> None:
    model = build_model(bow_pair_recipe("erckit.ConcatFuser.v1"), LABELS)
    encoder = model.encoders["ctx"]
    original = encoder.forward

    def branching(batch):  # Python control flow on tensor values: no graph can hold it
        counts = batch["counts"]
        return original({"counts": counts * 2 if counts.sum() > 3 else counts})

    encoder.forward = branching
    with pytest.raises(ErckitError, match=r"encoder 'ctx' \(example\.BagOfWords\.v1\) cannot be exported to ONNX"):
        export_model(model, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written, no staging left


def test_a_plugin_encoder_declares_its_own_export_inputs(tmp_path: Path) -> None:
    model = build_model(bow_pair_recipe("erckit.LateFusion.v1"), LABELS)
    encoder = model.encoders["text"]
    seen = []

    def examples():
        seen.append(True)
        return {"counts": torch.rand(2, 64)}, {"counts": torch.rand(5, 64)}

    encoder.export_examples = examples
    out = export_model(model, tmp_path / "out")
    assert seen and json.loads((out / "manifest.json").read_text())["encoders"]["text"]["dynamic_axes"] == {"counts": {"0": "batch"}}

    def refuse():
        raise ErckitError("it keeps state between calls")

    encoder.export_examples = refuse
    with pytest.raises(ErckitError, match=r"encoder 'text' \(example\.BagOfWords\.v1\) cannot be exported to ONNX: it keeps state"):
        export_model(model, tmp_path / "again")
    assert not (tmp_path / "again").exists()
