"""``erckit serve --backend onnx``: an ``erckit export`` directory served, answering as the PyTorch server does."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'erckit[onnx]'")

from erckit.cli.main import main  # noqa: E402
from live_server import serving  # noqa: E402
from test_endpoints import DIALOGUES, conversation_answers  # noqa: E402
from tiny_models import LABELS  # noqa: E402


@pytest.fixture(scope="module")
def export_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve-onnx") / "onnx"
    assert main(["export", str(model_dir), "-o", str(out)]) == 0
    return out


def close(a: dict, b: dict) -> bool:
    return max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in LABELS) <= 1e-4


def test_the_onnx_server_answers_as_the_torch_server(model_dir: Path, export_dir: Path) -> None:
    from erckit.export.runtime import OnnxModel

    with serving(model_dir) as (torch_url, _), serving(model_dir, model=OnnxModel.load(export_dir)) as (onnx_url, _):
        ours, theirs = (httpx.post(f"{url}/v1/predict", json=DIALOGUES, timeout=30).json()["dialogues"] for url in (onnx_url, torch_url))
        for a, b in zip((u for d in ours for u in d["utterances"]), (u for d in theirs for u in d["utterances"]), strict=True):
            assert {k: v for k, v in a.items() if k != "probabilities"} == {k: v for k, v in b.items() if k != "probabilities"}
            assert close(a, b)
        live, expected = conversation_answers(onnx_url, DIALOGUES), conversation_answers(torch_url, DIALOGUES)
        assert [(a["dialogue"], a["position"], a["prediction"]) for a in live] == [(b["dialogue"], b["position"], b["prediction"]) for b in expected]
        assert all(close(a, b) for a, b in zip(live, expected))
        assert httpx.get(f"{onnx_url}/v1/model", timeout=10).json()["labels"] == LABELS


def test_the_command_serves_an_export_and_refuses_a_model_dir(model_dir: Path, export_dir: Path, monkeypatch, capsys) -> None:
    import uvicorn

    started: list[int] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: started.append(self.config.port))
    assert main(["serve", "--backend", "onnx", str(export_dir), "--port", "8123", "--threads", "1"]) == 0
    assert started == [8123] and "serving" in capsys.readouterr().err
    assert main(["serve", "--backend", "onnx", str(model_dir)]) == 1
    assert "manifest.json is missing" in capsys.readouterr().err
    assert main(["serve", "--backend", "onnx", str(export_dir), "--precision", "bf16"]) == 2
    assert "--precision does not apply" in capsys.readouterr().err
    assert started == [8123]
