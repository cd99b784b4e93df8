"""Hostile model directories: ``erckit predict``/``evaluate`` refuse each in one line, fast, before allocating.

Every case starts from a tiny saved model (a bag-of-words one, or TelME's teacher on a tiny RoBERTa
with saved HF config and tokenizer files), damages one thing the way an attacker would, and runs
the CLI on it. Cases that hang the loader (FIFOs, /dev/zero, a million layers) run in a subprocess
with a memory cap and a deadline that starts once the interpreter has imported torch.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from erckit.cli.main import main
from tiny_models import save_model, teacher_recipe

INPUT = {"id": "d1", "utterances": [{"speaker": "Ross", "text": "we were on a break", "label": "anger"},
                                    {"speaker": "Rachel", "text": "we were not", "label": "joy"}]}
HANG_DEADLINE = 30.0  # seconds after start-up; the fixed loader answers in well under one
MEMORY_CAP = 4 * 2**30  # the hang cases must not take the machine down when they regress


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("bags") / "m")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("teacher") / "m", teacher_recipe())


@pytest.fixture
def dialogues(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(INPUT) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------- damage


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    value = json.loads(path.read_text(encoding="utf-8"))
    result = change(value)
    path.write_text(json.dumps(value if result is None else result), encoding="utf-8")


def edit_weights(directory: Path, change: Callable[[dict], None]) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = directory / "model.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=metadata)


def rename_encoder(directory: Path, new: str) -> None:
    """Rename encoder 'text' everywhere config.json and the weights name it (as an attacker would)."""
    def change(config: dict) -> None:
        config["anchor"] = new
        config["encoders"] = {new: config["encoders"]["text"]}

    edit_json(directory / "config.json", change)
    edit_weights(directory, lambda t: t.update({k.replace("encoders.text.", f"encoders.{new}.", 1): t.pop(k) for k in list(t)}))


def set_weight(name: str, value: float) -> Callable[[Path, Path], None]:
    def damage(directory: Path, scratch: Path) -> None:
        def change(tensors: dict) -> None:
            tensors[name] = tensors[name].clone()
            tensors[name].view(-1)[0] = value

        edit_weights(directory, change)

    return damage


def backbone_config(**values: object) -> Callable[[Path, Path], None]:
    return lambda d, s: edit_json(d / "encoders" / "text" / "config.json", lambda c: c.update(values))


def encoder_arg(key: str, value: object) -> Callable[[Path, Path], None]:
    return lambda d, s: edit_json(d / "config.json", lambda c: c["encoders"]["text"].update({key: value}))


def write(name: str, data: bytes) -> Callable[[Path, Path], None]:
    return lambda d, s: (d / name).write_bytes(data)


def absolute_encoder_name(directory: Path, scratch: Path) -> None:
    """The encoder's assets moved outside, its name the absolute path to them: the old loader read them."""
    outside = scratch / "outside"
    shutil.copytree(directory / "encoders" / "text", outside)
    rename_encoder(directory, str(outside))


def symlink_out(name: str) -> Callable[[Path, Path], None]:
    def damage(directory: Path, scratch: Path) -> None:
        target = scratch / Path(name).name
        shutil.move(directory / name, target)
        (directory / name).symlink_to(target)

    return damage


def deeply_nested(directory: Path, scratch: Path) -> None:
    text = (directory / "config.json").read_text(encoding="utf-8")
    (directory / "config.json").write_text(text.rstrip()[:-1] + ', "notes": ' + "[" * 100_000 + "]" * 100_000 + "}")


def huge_header(directory: Path, scratch: Path) -> None:
    data = (directory / "model.safetensors").read_bytes()
    (directory / "model.safetensors").write_bytes((2**40).to_bytes(8, "little") + data[8:])


def nested(depth: int) -> Callable[[Path, Path], None]:
    return lambda d, s: edit_json(d / "config.json", lambda c: c.update(notes=json.loads("[" * depth + "]" * depth)))


def oversized(directory: Path, scratch: Path) -> None:
    edit_json(directory / "config.json", lambda c: c.update(notes="x" * 17 * 2**20))


def socket_file(name: str) -> Callable[[Path, Path], None]:
    def damage(directory: Path, scratch: Path) -> None:
        import socket

        (directory / name).unlink()
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(directory / name))
        server.close()  # the socket file stays

    return damage


def shape_lie(directory: Path, scratch: Path) -> None:
    """A header whose shape claims more data than its offsets span (the file is otherwise intact)."""
    path = directory / "model.safetensors"
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    header["encoders.text.head.bias"]["shape"] = [3000]
    text = json.dumps(header).encode()
    text += b" " * max(0, length - len(text))
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + length :])


def many_tensors(directory: Path, scratch: Path) -> None:
    """Empty tensors are free to declare: 50,001 of them would let building create 100,000 modules."""
    header = {f"t{i}": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]} for i in range(50_001)}
    text = json.dumps(header).encode()
    (directory / "model.safetensors").write_bytes(len(text).to_bytes(8, "little") + text)


def duplicate_labels(directory: Path, scratch: Path) -> None:
    edit_json(directory / "config.json", lambda c: c.update(labels=["neutral", "joy", "joy"]))


# (case id, base model, damage, what the one-line error must say)
CASES = [
    # --- JSON that used to give tracebacks
    ("config-utf16", "bags", lambda d, s: (d / "config.json").write_bytes((d / "config.json").read_text().encode("utf-16")),
     r"config\.json: not UTF-8"),
    ("config-nested-100k-deep", "bags", deeply_nested, r"config\.json: nested more than 64 levels"),
    ("config-nested-100-deep", "bags", nested(100), r"config\.json: nested 65 levels deep, more than the 64 allowed"),
    ("config-17MB", "bags", oversized, r"config\.json is 17,8\d\d,\d\d\d bytes, more than the 16,777,216 allowed"),
    ("config-bare-string", "bags", write("config.json", b'"a model"'), r"config\.json: expected a JSON object .* got a string"),
    ("config-array", "bags", write("config.json", b"[1, 2]"), r"config\.json: expected a JSON object .* got an array"),
    ("tokenizer-json-is-a-list", "teacher", write("encoders/text/tokenizer.json", b"[1, 2, 3]"),
     r"tokenizer\.json: expected a JSON object .* got an array"),
    ("unknown-model-type", "teacher", backbone_config(model_type="nonsense"),
     r"encoders/text/config\.json: model_type 'nonsense' is not a model type"),
    ("arg-of-wrong-type", "bags", encoder_arg("buckets", "many"),
     r"config\.json: encoders -> text -> buckets: .*integer"),
    ("labels-duplicated", "bags", duplicate_labels, r"config\.json: 'labels' has duplicate label\(s\) 'joy'"),
    ("use-fuser-string", "bags", lambda d, s: edit_json(d / "config.json", lambda c: c.update(use_fuser="no")),
     r"config\.json: 'use_fuser' must be true or false"),
    # --- sizes the weights cannot back: refused before anything large is allocated
    ("hidden-size-2**30", "teacher", backbone_config(hidden_size=2**30),
     r"building the model would need more than .* bytes .* weights file holds"),
    ("vocab-size-2**36", "teacher", backbone_config(vocab_size=2**36),
     r"building the model would need more than .* bytes .* weights file holds"),
    ("embedding-dim-2**40", "teacher", encoder_arg("embedding_dim", 2**40),
     r"building the model would need more than .* bytes .* weights file holds"),
    ("buckets-2**40", "bags", encoder_arg("buckets", 2**40),
     r"building the model would need more than .* bytes .* weights file holds"),
    ("layers-as-float-1e6", "teacher", backbone_config(num_hidden_layers=1e6),
     r"encoder 'text' \(telme\.RobertaTeacher\.v1\).*(num_hidden_layers.*expected int|TypeError: 'float')"),
    ("header-length-1TB", "bags", huge_header, r"model\.safetensors cannot be loaded: header length .* is impossible"),
    ("header-shape-lie", "bags", shape_lie,
     r"model\.safetensors cannot be loaded: tensor 'encoders\.text\.head\.bias': shape \(3000,\) of F32 does not fit"),
    ("header-50001-tensors", "bags", many_tensors, r"model\.safetensors cannot be loaded: 50,001 tensors, more than the 50,000"),
    ("weights-socket", "bags", socket_file("model.safetensors"), r"model\.safetensors is a socket"),
    ("weights-of-other-size", "bags", encoder_arg("dim", 8),
     r"model\.safetensors does not match the model's config: tensor 'encoders\.text\.project\.0\.weight' is \(16, 64\)"),
    # --- paths that leave the directory
    ("encoder-name-absolute", "teacher", absolute_encoder_name, r"encoders -> .*encoder name '/.*' cannot contain '/'"),
    ("encoder-name-dotdot", "teacher", lambda d, s: rename_encoder(d, "../../../../../../etc"),
     r"encoders -> .*encoder name '\.\./.*' cannot contain '\.', '/'"),
    ("tokenizer-config-vocab-file-absolute", "teacher",
     lambda d, s: edit_json(d / "encoders/text/tokenizer_config.json", lambda c: c.update(vocab_file="/etc/passwd")),
     r"tokenizer_config\.json: vocab_file: '/etc/passwd' is not a plain name"),
    ("weights-symlink-outside", "bags", symlink_out("model.safetensors"), r"model\.safetensors: resolves to .* outside the model directory"),
    ("backbone-config-symlink-outside", "teacher", symlink_out("encoders/text/config.json"),
     r"config\.json: resolves to .* outside the model directory"),
    # --- silent garbage
    ("weight-nan", "bags", set_weight("encoders.text.head.bias", float("nan")),
     r"model\.safetensors cannot be loaded: tensor 'encoders\.text\.head\.bias' holds 1 non-finite value"),
    ("weight-inf", "teacher", set_weight("encoders.text.backbone.embeddings.word_embeddings.weight", float("inf")),
     r"model\.safetensors cannot be loaded: tensor 'encoders\.text\.backbone\.embeddings\.word_embeddings\.weight' holds 1 non-finite"),
]


def damaged(base: Path, scratch: Path, damage: Callable[[Path, Path], None]) -> Path:
    directory = scratch / "model"
    shutil.copytree(base, directory, symlinks=True)
    damage(directory, scratch)
    return directory


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("case, base, damage, message", CASES, ids=[c[0] for c in CASES])
def test_hostile_model_directory_is_refused_in_one_line(
    case, base, damage, message, command, request, tmp_path, dialogues, capsys
) -> None:
    directory = damaged(request.getfixturevalue(base), tmp_path, damage)
    started = time.monotonic()
    code = main([command, str(directory), str(dialogues)])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert elapsed < HANG_DEADLINE
    assert re.search(message, one_error_line(captured.err)), captured.err


def test_non_finite_outputs_are_refused_naming_the_utterance(bags: Path, tmp_path: Path, dialogues: Path, capsys) -> None:
    """Finite weights so large that the scores overflow: no NaN in the JSONL, no metrics from NaN."""
    def overflow(tensors: dict) -> None:
        for name in ("encoders.text.project.0.weight", "encoders.text.head.weight"):
            tensors[name] = tensors[name].abs() * 0 + 3e38

    directory = damaged(bags, tmp_path, lambda d, s: edit_weights(d, overflow))
    for command in ("predict", "evaluate"):
        assert main([command, str(directory), str(dialogues)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "scores for dialogue 'd1', utterance 0 (0-based) are not finite" in one_error_line(captured.err)


def test_remote_code_in_saved_files_never_runs(teacher: Path, tmp_path: Path, dialogues: Path, capsys) -> None:
    """``auto_map`` pointing at a module shipped in the directory is ignored (and refused with an unknown type)."""
    marker = tmp_path / "ran"

    def plant(directory: Path, scratch: Path) -> None:
        assets = directory / "encoders" / "text"
        (assets / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nclass Evil: pass\n")
        edit_json(assets / "config.json", lambda c: c.update(auto_map={"AutoConfig": "evil.Evil", "AutoModel": "evil.Evil"}))
        edit_json(assets / "tokenizer_config.json", lambda c: c.update(auto_map={"AutoTokenizer": ["evil.Evil", None]}))

    directory = damaged(teacher, tmp_path / "known", plant)
    assert main(["predict", str(directory), str(dialogues)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    unknown = damaged(teacher, tmp_path / "unknown", plant)
    edit_json(unknown / "encoders" / "text" / "config.json", lambda c: c.update(model_type="evil"))
    assert main(["predict", str(unknown), str(dialogues)]) == 1
    assert "model_type 'evil' is not a model type" in one_error_line(capsys.readouterr().err)
    assert not marker.exists()


# ---------------------------------------------------------------- hang cases

# Imports happen before "ready", so the deadline times the load alone; HF's are needed only where
# the fixed loader gets as far as building a backbone.
CHILD = """
import importlib, sys
import torch
import erckit.model
from erckit.cli.main import main
for module in sys.argv[1].split(","):
    importlib.import_module(module)
print("ready", flush=True)
sys.exit(main(sys.argv[2:]))
"""
HF = "transformers,transformers.models.roberta.modeling_roberta,erckit_telme.teacher"


def fifo(name: str) -> Callable[[Path, Path], None]:
    def damage(directory: Path, scratch: Path) -> None:
        (directory / name).unlink()
        os.mkfifo(directory / name)

    return damage


def dev_zero(name: str) -> Callable[[Path, Path], None]:
    def damage(directory: Path, scratch: Path) -> None:
        (directory / name).unlink()
        (directory / name).symlink_to("/dev/zero")

    return damage


HANGS = [
    ("weights-fifo", "bags", fifo("model.safetensors"), r"model\.safetensors is a FIFO", "json"),
    ("config-fifo", "bags", fifo("config.json"), r"config\.json is a FIFO", "json"),
    ("tokenizer-fifo", "teacher", fifo("encoders/text/tokenizer.json"), r"tokenizer\.json is a FIFO", "json"),
    ("tokenizer-dev-zero", "teacher", dev_zero("encoders/text/tokenizer.json"),
     r"tokenizer\.json: resolves to /dev/zero, outside the model directory", "json"),
    ("a-million-layers", "teacher", backbone_config(num_hidden_layers=10**6),
     r"building the model would need more than .* parameters and buffers", HF),
]


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.mark.slow  # a fresh interpreter importing torch and transformers per case
@pytest.mark.parametrize("case, base, damage, message, preload", HANGS, ids=[c[0] for c in HANGS])
def test_hanging_model_directory_is_refused_at_once(case, base, damage, message, preload, request, tmp_path, dialogues) -> None:
    directory = damaged(request.getfixturevalue(base), tmp_path, damage)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, preload, "predict", str(directory), str(dialogues)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_cap_memory,
    )
    try:
        assert child.stdout.readline() == "ready\n"
        started = time.monotonic()
        try:
            _, stderr = child.communicate(timeout=HANG_DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still loading {HANG_DEADLINE:.0f} s after start-up: the loader hangs on {case}")
        elapsed = time.monotonic() - started
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 1
    assert re.search(message, one_error_line(stderr)), stderr
    assert elapsed < HANG_DEADLINE
