"""A content-addressed on-disk cache of tensors (decoded media, frozen-encoder outputs).

The key is the sha256 of a canonical JSON of *what produced the value*: for
media, the file's identity (absolute path, size, mtime_ns: editing or replacing
the file changes the key), the span and the preprocessing spec; for embeddings,
add an encoder fingerprint. Values are ``dict[str, Tensor]`` saved with
safetensors (no pickle), written atomically (``erckit.fileio``), so concurrent
DataLoader workers and interrupted writes never leave a half-written entry under
a real key; a failed write (disk full) is one ``WriteError`` line. A file that fails to
load (corrupt, truncated) counts as a miss and is rewritten.

    >>> cache = DiskCache("~/.cache/erckit")
    >>> parts = {"file": file_identity(path), "span": [0.0, 1.5], "spec": "AudioSpec(16000)"}
    >>> tensors, hit = cache.get_or_compute(parts, lambda: {"audio": load_audio(path)})
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    import torch

Tensors = dict[str, "torch.Tensor"]


def file_identity(path: str | Path) -> dict[str, Any]:
    """What identifies a file's content cheaply: absolute path, size and mtime_ns."""
    path = Path(path).expanduser().absolute()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cache_key(parts: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``parts`` (sorted keys, no whitespace).

    Values may be JSON types, paths, or dataclasses (e.g. ``AudioSpec``), which are
    encoded with their class name so two specs with equal fields but different
    meaning never collide.
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=_canonical, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__class__": type(value).__qualname__, **dataclasses.asdict(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot use {type(value).__name__} in a cache key: {value!r}")


@dataclasses.dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0  # entries that failed to load and were treated as misses
    writes: int = 0


class PicklesWithoutLock:
    """Mixin for objects sent to DataLoader workers: a lock cannot be pickled, so each copy gets a new one."""

    _lock: threading.Lock

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class DiskCache(PicklesWithoutLock):
    """Tensors on disk under ``root/<key[:2]>/<key>.safetensors``; safe across processes."""

    SUFFIX = ".safetensors"

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().absolute()
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{self.SUFFIX}"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> Tensors | None:
        """The tensors stored under ``key``, or None if absent or unreadable."""
        from safetensors.torch import load_file

        path = self.path(key)
        if not path.is_file():
            self._count("misses")
            return None
        try:
            tensors = load_file(str(path))
        except Exception:  # any unreadable entry (truncated, garbage) is just a miss
            self._count("corrupt")
            self._count("misses")
            return None
        self._count("hits")
        return tensors

    def put(self, key: str, tensors: Mapping[str, "torch.Tensor"]) -> Path:
        """Store ``tensors`` atomically under ``key`` (last writer wins; all writers agree)."""
        from ..fileio import atomic_save_tensors

        path = self.path(key)
        self.ensure_writable(path.parent)
        # safetensors needs contiguous tensors that do not share memory.
        payload = {name: t.detach().cpu().contiguous().clone() for name, t in tensors.items()}
        atomic_save_tensors(payload, path)
        self._count("writes")
        return path

    def ensure_writable(self, directory: Path | None = None) -> None:
        """Create ``directory`` (default: the root) or raise one line saying why it cannot hold entries."""
        from ..errors import DataError
        from ..fileio import describe

        directory = directory or self.root
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied", str(directory))
        except OSError as error:
            detail = describe(error)
            if isinstance(error, (FileExistsError, NotADirectoryError)):
                detail = "it (or a parent) is a file, not a directory"
            raise DataError(f"cache directory {self.root} cannot be used: {detail}; set data.cache_dir to a writable directory") from None

    def get_or_compute(
        self, parts: Mapping[str, Any], compute: Callable[[], Mapping[str, "torch.Tensor"]]
    ) -> tuple[Tensors, bool]:
        """``(tensors, hit)``: the cached value for ``parts``, computing and storing it on a miss."""
        key = cache_key(parts)
        cached = self.get(key)
        if cached is not None:
            return cached, True
        tensors = dict(compute())
        self.put(key, tensors)
        return tensors, False

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)
