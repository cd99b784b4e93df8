"""A model directory is untrusted input: check what the loader reads before it reads or allocates.

Models are shared and (soon) served, so ``ERCModel.from_pretrained`` treats every file as hostile
and refuses, in one line naming the file and key:

* anything but a regular file among the files it reads (a FIFO would block forever, a device or a
  symlink to ``/dev/zero`` never ends), and anything that resolves outside the directory;
* JSON that is oversized, not UTF-8, nested absurdly deep, or not an object at the top;
* names that become paths (encoder names, ``*_file`` entries of asset configs) unless they are
  plain names inside the directory;
* a safetensors header that is oversized or inconsistent (it is parsed here, capped, before the
  file is opened by safetensors: names, dtypes, shapes, offsets, total bytes vs the file size).

While the model is built, ``allocation_guard`` bounds what the encoder factories may allocate by
what the weights file holds, so a config asking for a million layers or a 1 TB embedding is refused
at its first oversized tensor instead of hanging or exhausting memory.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

from .data.types import repeated_labels
from .errors import ModelLoadError

MAX_CONFIG_BYTES = 16 * 2**20
MAX_ASSET_JSON_BYTES = 256 * 2**20  # the largest HF tokenizers are ~35 MB
MAX_JSON_DEPTH = 64  # real configs nest < 10 deep; serde (the tokenizers library) stops at 128
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit
MAX_TENSORS = 50_000  # TelME at full size has ~1,000; the count bounds what building may create
MAX_ASSET_ENTRIES = 10_000
MAX_NAME_LENGTH = 128
# Slack over the weights file for what building a model may allocate: resized embeddings,
# non-persistent buffers, temporaries (measured: <= 1.4x on every shipped encoder).
ALLOCATION_FACTOR = 2
ALLOCATION_SLACK_BYTES = 64 * 2**20
REGISTRATION_SLACK = 256

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}


def one_line(text: object, limit: int = 300) -> str:
    """Collapse whitespace (HF errors span many lines) and cap the length."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# ------------------------------------------------------------------ paths and files


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return name
    return "of an unknown kind"


def inside(path: Path, root: Path) -> Path:
    """``path`` resolved; refused unless it stays inside ``root`` (symlinks followed)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop
        raise ModelLoadError(f"{path}: cannot be resolved ({one_line(error)})") from None
    if not resolved.is_relative_to(root.resolve()):
        raise ModelLoadError(f"{path}: resolves to {resolved}, outside the model directory {root}; refusing to read it")
    return resolved


def open_regular(path: Path, root: Path) -> BinaryIO:
    """Open a regular file inside ``root`` for reading; never blocks on a FIFO."""
    resolved = check_regular(path, root)  # devices are never even opened (some act on open)
    try:
        # O_NONBLOCK: a file swapped for a FIFO since the check must not block; fstat refuses it.
        fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing") from None
    except OSError as error:
        raise ModelLoadError(f"{path}: cannot be opened ({error.strerror})") from None
    handle = os.fdopen(fd, "rb")
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        handle.close()
        raise ModelLoadError(f"{path} is {_kind(mode)}; a model directory holds only regular files")
    return handle


def read_regular(path: Path, root: Path, limit: int) -> bytes:
    """The bytes of a regular file inside ``root``, refused if larger than ``limit``."""
    with open_regular(path, root) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise ModelLoadError(f"{path} is {size:,} bytes, more than the {limit:,} allowed")
        return handle.read(limit + 1)[:limit]


def check_regular(path: Path, root: Path) -> Path:
    """``path`` exists, is a regular file and lies inside ``root`` (for files other libraries open)."""
    resolved = inside(path, root)
    try:
        mode = resolved.stat().st_mode
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing") from None
    if not stat.S_ISREG(mode):
        raise ModelLoadError(f"{path} is {_kind(mode)}; a model directory holds only regular files")
    return resolved


def plain_name(name: object, where: str) -> str:
    """A name used as one path component: no separators, no ``..``, not absolute, no NUL."""
    bad = (
        not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH or name in (".", "..")
        or any(c in name for c in "/\\\0") or re.match(r"^[A-Za-z]:", name) is not None
    )
    if bad:
        raise ModelLoadError(
            f"{where}: {name!r} is not a plain name (1-{MAX_NAME_LENGTH} characters, no '/', '\\', NUL, "
            "drive letter, '.' or '..')"
        )
    return name


def check_assets(root: Path, name: str, where: str) -> Path:
    """``root/encoders/<name>``, checked before any loader reads it.

    The encoder name is a plain name; every entry below is a directory or a regular file that
    resolves inside ``root``; every ``*.json`` is a sane JSON object whose ``*_file`` entries are
    plain file names (older transformers take ``vocab_file`` & co. from ``tokenizer_config.json``
    verbatim, so an absolute path there would be read).
    """
    from .recipe.schema import encoder_name_problem

    problem = encoder_name_problem(name) if isinstance(name, str) else "must be a string"
    if problem:
        raise ModelLoadError(f"{where}: encoder name {name!r} {problem}")
    directory = root / "encoders" / name
    inside(directory, root)
    if not directory.exists():
        return directory  # encoders that save nothing; a loader that needs a file says which
    for path in _regular_files(directory, root):
        if path.suffix == ".json":
            for key, entry in read_json(path, root, MAX_ASSET_JSON_BYTES).items():
                if key.endswith(("_file", "_files")) and isinstance(entry, str):
                    plain_name(entry, f"{path}: {key}")
    return directory


def _regular_files(directory: Path, root: Path) -> list[Path]:
    """Every file below ``directory`` (symlinks followed, once); anything not regular is refused."""
    files: list[Path] = []
    pending = [directory]
    visited: set[Path] = set()
    while pending:
        current = pending.pop()
        resolved = inside(current, root)
        if resolved in visited:
            continue
        visited.add(resolved)
        if not resolved.is_dir():
            raise ModelLoadError(f"{current} is {_kind(resolved.stat().st_mode)}, expected a directory")
        with os.scandir(resolved) as entries:
            for entry in entries:
                path = current / entry.name
                try:
                    mode = inside(path, root).stat().st_mode
                except FileNotFoundError:
                    raise ModelLoadError(f"{path} is a broken symlink") from None
                if stat.S_ISDIR(mode):
                    pending.append(path)
                elif stat.S_ISREG(mode):
                    files.append(path)
                else:
                    raise ModelLoadError(f"{path} is {_kind(mode)}; a model directory holds only regular files")
                if len(files) + len(pending) > MAX_ASSET_ENTRIES:
                    raise ModelLoadError(f"{directory} holds more than {MAX_ASSET_ENTRIES:,} files")
    return sorted(files)


# ------------------------------------------------------------------------------ JSON


def read_json(path: Path, root: Path, limit: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """A JSON object from a regular UTF-8 file inside ``root``; every problem names ``path``."""
    data = read_regular(path, root, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelLoadError(f"{path}: not UTF-8 text (byte {error.start}); JSON files must be UTF-8") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:
        raise ModelLoadError(f"{path}: nested more than {MAX_JSON_DEPTH} levels deep") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path}: expected a JSON object at the top level, got {_json_type(value)}")
    depth = _depth(value)
    if depth > MAX_JSON_DEPTH:
        raise ModelLoadError(f"{path}: nested {depth} levels deep, more than the {MAX_JSON_DEPTH} allowed")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _depth(value: Any) -> int:
    deepest = 0
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


# --------------------------------------------------------------------- config.json


def check_config(config: Mapping[str, Any], path: Path) -> None:
    """The keys every format of ``config.json`` shares (the rest: ``erckit.modelconfig``)."""
    for key in ("labels", "anchor"):
        if key not in config:
            raise ModelLoadError(f"{path}: missing {key!r}; is this an erckit model directory?")
    labels = config["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise ModelLoadError(f"{path}: 'labels' must be a non-empty list of non-empty strings")
    duplicates = repeated_labels(labels)
    if duplicates:
        raise ModelLoadError(f"{path}: 'labels' has duplicate label(s) {', '.join(map(repr, duplicates))}")
    if not isinstance(config["anchor"], str):
        raise ModelLoadError(f"{path}: 'anchor' must be a string (an encoder name)")
    if "use_fuser" in config and not isinstance(config["use_fuser"], bool):
        raise ModelLoadError(f"{path}: 'use_fuser' must be true or false, got {one_line(repr(config['use_fuser']), 40)}")


# ------------------------------------------------------------------ safetensors header


@dataclass
class WeightsHeader:
    """What a safetensors file declares: per tensor (dtype, shape), its metadata and data size."""

    tensors: dict[str, tuple[str, tuple[int, ...]]]
    metadata: dict[str, str] = field(default_factory=dict)
    data_bytes: int = 0


def read_header(path: Path, root: Path) -> WeightsHeader:
    """Parse and check a safetensors header without reading (or mapping) the tensor data."""
    with open_regular(path, root) as handle:
        size = os.fstat(handle.fileno()).st_size
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ModelLoadError(f"{path} cannot be loaded: too short to be a safetensors file ({size} bytes)")
        length = int.from_bytes(prefix, "little")
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise ModelLoadError(f"{path} cannot be loaded: header length {length:,} is impossible for a {size:,}-byte file")
        raw = handle.read(length)
    try:
        entries = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelLoadError(f"{path} cannot be loaded: the header is not valid JSON; not a safetensors file") from None
    if not isinstance(entries, dict):
        raise ModelLoadError(f"{path} cannot be loaded: the header is not a JSON object; not a safetensors file")
    metadata = entries.pop("__metadata__", None) or {}
    if len(entries) > MAX_TENSORS:
        raise ModelLoadError(f"{path} cannot be loaded: {len(entries):,} tensors, more than the {MAX_TENSORS:,} allowed")
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelLoadError(f"{path} cannot be loaded: __metadata__ must map names to strings")
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    spans: list[tuple[int, int, str]] = []
    for name, entry in entries.items():
        dtype, shape, span = _entry(path, name, entry)
        tensors[name] = (dtype, shape)
        spans.append((*span, name))
    data_bytes = size - 8 - length
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise ModelLoadError(f"{path} cannot be loaded: tensor {name!r} starts at byte {begin}, expected {position}")
        position = end
    if position != data_bytes:
        raise ModelLoadError(f"{path} cannot be loaded: the header declares {position:,} bytes of tensors, the file holds {data_bytes:,}")
    return WeightsHeader(tensors, dict(metadata), data_bytes)


def _entry(path: Path, name: str, entry: Any) -> tuple[str, tuple[int, ...], tuple[int, int]]:
    where = f"{path} cannot be loaded: tensor {name!r}"
    if not isinstance(entry, dict):
        raise ModelLoadError(f"{where}: expected an object with dtype, shape, data_offsets")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise ModelLoadError(f"{where}: unsupported dtype {one_line(repr(dtype), 40)} (supported: {', '.join(DTYPE_BYTES)})")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise ModelLoadError(f"{where}: shape must be a list of non-negative integers, got {one_line(repr(shape), 80)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int and n >= 0 for n in offsets)):
        raise ModelLoadError(f"{where}: data_offsets must be two non-negative integers, got {one_line(repr(offsets), 80)}")
    count = 1
    for n in shape:
        count *= n
    if offsets[1] - offsets[0] != count * DTYPE_BYTES[dtype]:
        raise ModelLoadError(f"{where}: shape {tuple(shape)} of {dtype} does not fit data_offsets {offsets}")
    return dtype, tuple(shape), (offsets[0], offsets[1])


def check_against_header(expected: Mapping[str, Any], header: WeightsHeader, aliases: Mapping[str, str], path: Path) -> None:
    """Names and shapes of a module's state dict against the header; the first mismatch is named."""
    declared = dict(header.tensors)
    for alias, source in aliases.items():
        if source in declared:
            declared[alias] = declared[source]
    for name, tensor in expected.items():
        if name not in declared:
            missing = [n for n in expected if n not in declared]
            raise ModelLoadError(
                f"{path} does not match the model's config: {len(missing)} tensor(s) missing, first {name!r}"
            )
        shape = declared[name][1]
        if shape != tuple(tensor.shape):
            raise ModelLoadError(
                f"{path} does not match the model's config: tensor {name!r} is {shape} in the file, "
                f"{tuple(tensor.shape)} in the model"
            )
    unexpected = [n for n in declared if n not in expected]
    if unexpected:
        raise ModelLoadError(
            f"{path} does not match the model's config: {len(unexpected)} unexpected tensor(s), first {unexpected[0]!r}"
        )


# ----------------------------------------------------------------- allocation guard


@contextmanager
def allocation_guard(header: WeightsHeader, aliases: int, where: str) -> Iterator[None]:
    """Refuse, before it happens, any tensor allocation that the weights file cannot account for.

    Tensor constructors (``torch.empty``, ``zeros``, ...) are probed on the ``meta`` device first
    and refused once the running total exceeds ``ALLOCATION_FACTOR`` x the file's tensor bytes
    (+ slack); registered parameters and buffers are counted against the file's tensor count.
    Only this thread is watched, so concurrent loads and training elsewhere are unaffected.
    """
    import torch
    from torch.nn.modules import module as module_hooks
    from torch.overrides import TorchFunctionMode

    byte_budget = ALLOCATION_FACTOR * header.data_bytes + ALLOCATION_SLACK_BYTES
    # Tied names (aliases) count too, but never more than the tensors themselves: metadata is cheap to inflate.
    count_budget = ALLOCATION_FACTOR * (len(header.tensors) + min(aliases, len(header.tensors))) + REGISTRATION_SLACK
    owner = threading.get_ident()
    used = {"bytes": 0, "tensors": 0}
    constructors = {
        torch.empty, torch.empty_strided, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn,
        torch.randint, torch.randperm, torch.arange, torch.linspace, torch.logspace, torch.eye,
        torch.tensor, torch.as_tensor, torch.asarray,
    }

    def refuse(what: str) -> None:
        raise ModelLoadError(
            f"{where}: building the model would need {what}, far more than its weights file holds "
            f"({header.data_bytes:,} bytes in {len(header.tensors)} tensors); the config's sizes are wrong"
        )

    class Guard(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if func in constructors and kwargs.get("out") is None:
                try:
                    probe = func(*args, **{**kwargs, "device": "meta"})
                except Exception:  # noqa: BLE001 - arguments the real call will judge itself
                    probe = None
                if isinstance(probe, torch.Tensor) and probe.layout == torch.strided:
                    used["bytes"] += probe.numel() * probe.element_size()
                    if used["bytes"] > byte_budget:
                        refuse(f"more than {byte_budget:,} bytes of tensors (a {tuple(probe.shape)} tensor)")
            return func(*args, **kwargs)

    def count(module: Any, name: str, tensor: Any) -> None:
        if tensor is None or threading.get_ident() != owner:
            return
        used["tensors"] += 1
        if used["tensors"] > count_budget:
            refuse(f"more than {count_budget:,} parameters and buffers")

    handles = [
        module_hooks.register_module_parameter_registration_hook(count),
        module_hooks.register_module_buffer_registration_hook(count),
    ]
    try:
        with Guard():
            yield
    finally:
        for handle in handles:
            handle.remove()
