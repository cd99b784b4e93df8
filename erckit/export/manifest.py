"""``manifest.json`` of an exported directory: what it holds and a sha256 of every other file.

Loading recomputes every checksum and refuses a file that differs, is missing, or is not listed
(a stray ``added_tokens.json`` would change the tokenizer as surely as an edited one). The
checksums catch corruption and accidental edits; whoever can rewrite the files can rewrite the
manifest too, so an exported directory is still only as trustworthy as where it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ErckitError, ModelLoadError
from ..fileio import file_sha256

MANIFEST_FILE = "manifest.json"
FORMAT = "erckit.onnx"
FORMAT_VERSION = 1
GRAPHS = "graphs"
PRECISIONS = ("fp32", "int8")
INSTALL = "pip install 'erckit[onnx]'"


def require(*modules: str) -> None:
    """Import the ONNX extra's modules now, so a missing one is one line naming the pip command."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ErckitError(f"ONNX export and the onnx backend need {name}: {INSTALL}") from None


def files_below(root: Path) -> list[str]:
    """Every file below ``root`` but the manifest, as POSIX relative paths."""
    names = (path.relative_to(root).as_posix() for path in sorted(root.rglob("*")) if not path.is_dir())
    return [name for name in names if name != MANIFEST_FILE]


def checksums(root: Path) -> dict[str, str]:
    return {name: file_sha256(root / name) for name in files_below(root)}


def read_manifest(root: Path) -> dict[str, Any]:
    """The checked manifest of an exported directory: format, then every file against its checksum."""
    from .. import modeldir

    path = root / MANIFEST_FILE
    if not path.exists():
        hint = " (it is a model directory: export it with 'erckit export' first)" if (root / "model.safetensors").exists() else ""
        raise ModelLoadError(f"{path} is missing; is {root} a directory written by 'erckit export'?{hint}")
    manifest = modeldir.read_json(path, root)
    if manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{path}: not an erckit ONNX export (format {manifest.get('format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(
            f"{path}: ONNX export format {manifest.get('format_version')!r}; this erckit reads format {FORMAT_VERSION}"
        )
    if manifest.get("precision") not in PRECISIONS:
        raise ModelLoadError(f"{path}: precision {manifest.get('precision')!r} is not one of {', '.join(PRECISIONS)}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ModelLoadError(f"{path}: 'files' must map file names to sha256 checksums")
    for name, expected in files.items():
        parts = name.split("/")
        for part in parts:
            modeldir.plain_name(part, f"{path}: files")
        file = modeldir.check_regular(root.joinpath(*parts), root)
        if file_sha256(file) != expected:
            raise ModelLoadError(
                f"{root / name} does not match its checksum in {MANIFEST_FILE} (changed or corrupted since "
                "'erckit export' wrote it); export the model again"
            )
    present = set(files_below(root))
    unlisted = sorted(present - set(files))
    if unlisted:
        raise ModelLoadError(f"{root / unlisted[0]} is not listed in {MANIFEST_FILE} ({len(unlisted)} unlisted file(s)); export the model again")
    return manifest
