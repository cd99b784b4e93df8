"""``erckit export`` and ``erckit predict --backend onnx``: outputs like the torch backend's, bad input refused cleanly."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'erckit[onnx]'")

from erckit.cli.main import main  # noqa: E402
from tiny_models import save_model  # noqa: E402

DIALOGUES = [
    {"id": "d1", "utterances": [{"speaker": "Ross", "text": "we were on a break", "label": "anger"},
                                {"speaker": "Rachel", "text": "no we were not", "label": "sarcasm"}]},
    {"utterances": [{"speaker": "Gunther", "text": "coffee?"}]},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture(scope="module")
def export_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["export", str(model_dir), "-o", str(out)]) == 0
    return out


@pytest.fixture
def dialogues(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in DIALOGUES), encoding="utf-8")
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_writes_graphs_config_assets_and_manifest(export_dir: Path) -> None:
    names = sorted(p.relative_to(export_dir).as_posix() for p in export_dir.rglob("*") if p.is_file())
    assert names == ["config.json", "graphs/text.onnx", "manifest.json"]
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"config.json", "graphs/text.onnx"} and manifest["fuser"] is None


@pytest.mark.parametrize("format", ["jsonl", "csv", "table"])
def test_onnx_backend_output_has_the_torch_backends_shape(format: str, model_dir: Path, export_dir: Path, dialogues: Path, capsys) -> None:
    code, torch_out, _ = run(capsys, "predict", str(model_dir), str(dialogues), "--format", format)
    assert code == 0
    code, onnx_out, _ = run(capsys, "predict", "--backend", "onnx", str(export_dir), str(dialogues), "--format", format)
    assert code == 0
    if format == "jsonl":
        torch_rows, onnx_rows = ([json.loads(line) for line in out.splitlines()] for out in (torch_out, onnx_out))
        for t, o in zip(torch_rows, onnx_rows, strict=True):
            assert t.keys() == o.keys() and len(t["utterances"]) == len(o["utterances"])
            for tu, ou in zip(t["utterances"], o["utterances"]):
                assert tu.keys() == ou.keys() and tu["prediction"] == ou["prediction"]
                assert max(abs(tu["probabilities"][k] - ou["probabilities"][k]) for k in tu["probabilities"]) <= 1e-4
    elif format == "csv":
        torch_rows, onnx_rows = (list(csv.reader(io.StringIO(out))) for out in (torch_out, onnx_out))
        assert torch_rows[0] == onnx_rows[0] and len(torch_rows) == len(onnx_rows) == 4
        assert [r[:6] for r in torch_rows] == [r[:6] for r in onnx_rows]  # ids, text, gold, prediction
    else:
        assert torch_out.splitlines()[:3] == onnx_out.splitlines()[:3] and len(torch_out.splitlines()) == len(onnx_out.splitlines())


def test_onnx_backend_streams(export_dir: Path, monkeypatch, capsys) -> None:
    lines = "".join(json.dumps({"dialogue": "s", "speaker": s, "text": t}) + "\n" for s, t in [("A", "hi"), ("B", "great news")])
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    code, out, err = run(capsys, "predict", "--backend", "onnx", str(export_dir), "-")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["dialogue"], r["position"]) for r in records] == [("s", 0), ("s", 1)] and all("prediction" in r for r in records)


def test_onnx_backend_refuses_torch_only_options(export_dir: Path, dialogues: Path, capsys) -> None:
    code, _, err = run(capsys, "predict", "--backend", "onnx", str(export_dir), str(dialogues), "--precision", "bf16")
    assert code != 0 and "--precision does not apply to --backend onnx" in err
    code, _, err = run(capsys, "predict", "--backend", "onnx", str(export_dir), str(dialogues), "--device", "cuda:0")
    assert code != 0 and "runs on the CPU" in err


def test_a_model_directory_is_not_an_export(model_dir: Path, dialogues: Path, capsys) -> None:
    code, out, err = run(capsys, "predict", "--backend", "onnx", str(model_dir), str(dialogues))
    assert code == 1 and out == ""
    assert "manifest.json is missing" in err and "export it with 'erckit export' first" in err


# ------------------------------------------------------------------ bad input


def test_exporting_a_directory_that_is_not_a_model(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    code, _, err = run(capsys, "export", str(tmp_path / "notes"), "-o", str(tmp_path / "out"))
    assert code == 1 and "config.json is missing" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_fails_before_any_work(model_dir: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "export", str(model_dir), "-o", str(blocker / "out"))
    assert code == 1 and f"cannot write {blocker / 'out'}" in err
    code, _, err = run(capsys, "export", str(model_dir), "-o", str(blocker))
    assert code == 1 and "exists and is not a directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_an_existing_export_is_replaced_only_with_force(model_dir: Path, export_dir: Path, tmp_path: Path, capsys) -> None:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(export_dir, target)
    code, _, err = run(capsys, "export", str(model_dir), "-o", str(target))
    assert code == 1 and "already exists and is not empty" in err
    assert run(capsys, "export", str(model_dir), "-o", str(target), "--force", "--quantize", "int8")[0] == 0
    assert json.loads((target / "manifest.json").read_text())["precision"] == "int8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no staging directory left


@pytest.mark.parametrize("change", ["graph", "config", "unlisted", "missing"])
def test_a_tampered_export_is_refused(change: str, export_dir: Path, dialogues: Path, tmp_path: Path, capsys) -> None:
    import shutil

    target = tmp_path / "tampered"
    shutil.copytree(export_dir, target)
    if change == "graph":
        with open(target / "graphs" / "text.onnx", "r+b") as handle:
            handle.seek(-8, 2)
            handle.write(b"\x00" * 8)
        expected = "graphs/text.onnx does not match its checksum in manifest.json"
    elif change == "config":
        config = json.loads((target / "config.json").read_text())
        config["labels"] = list(reversed(config["labels"]))
        (target / "config.json").write_text(json.dumps(config))
        expected = "config.json does not match its checksum"
    elif change == "unlisted":
        (target / "encoders" / "text").mkdir(parents=True, exist_ok=True)
        (target / "encoders" / "text" / "added_tokens.json").write_text("{}")
        expected = "added_tokens.json is not listed in manifest.json"
    else:
        (target / "graphs" / "text.onnx").unlink()
        expected = "graphs/text.onnx is missing"
    code, out, err = run(capsys, "predict", "--backend", "onnx", str(target), str(dialogues))
    assert code == 1 and out == "" and expected in err and len(err.strip().splitlines()) == 1


def test_without_the_extra_both_commands_name_the_pip_command(model_dir: Path, export_dir: Path, dialogues: Path,
                                                              tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    code, _, err = run(capsys, "export", str(model_dir), "-o", str(tmp_path / "out"))
    assert code == 1 and "pip install 'erckit[onnx]'" in err and not (tmp_path / "out").exists()
    code, _, err = run(capsys, "predict", "--backend", "onnx", str(export_dir), str(dialogues))
    assert code == 1 and "pip install 'erckit[onnx]'" in err


def test_the_docs_examples_run(tmp_path: Path, monkeypatch, capsys) -> None:
    """docs/export.md's commands, verbatim, where the quick start leaves its model (a tiny untrained one here)."""
    import re
    import shlex

    page = (Path(__file__).resolve().parents[2] / "docs" / "export.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", page, re.DOTALL).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("erckit ")]
    assert [c.split()[1] for c in commands] == ["export", "export", "predict"]
    monkeypatch.chdir(tmp_path)
    save_model(tmp_path / "runs" / "quickstart" / "model")
    (tmp_path / "data" / "demo").mkdir(parents=True)
    (tmp_path / "data" / "demo" / "test.jsonl").write_text(json.dumps(DIALOGUES[0]) + "\n", encoding="utf-8")
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, (command, capsys.readouterr().err)
    assert "Rachel" in capsys.readouterr().out
    assert json.loads((tmp_path / "runs" / "quickstart-int8" / "manifest.json").read_text())["precision"] == "int8"


def test_onnx_backend_skips_broken_lines_and_batches_as_asked(export_dir: Path, dialogues: Path, capsys) -> None:
    broken = dialogues.with_name("broken.jsonl")
    broken.write_text(dialogues.read_text() + "not json\n", encoding="utf-8")
    code, out, err = run(capsys, "predict", "--backend", "onnx", str(export_dir), str(broken), "--skip-errors", "--batch-size", "1")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == ["d1", "broken-2"]  # ids from the file name
    assert f"{broken}:3: invalid JSON" in err
