"""Atomic writes: a file or a directory appears complete under its final name, or not at all.

Everything erckit writes that matters (weights, checkpoints, model directories,
cache entries, demo data, reports, predictions) goes through here:

    >>> atomic_write_text(path, text)
    >>> with atomic_path(path) as temp:          # any writer that wants a path
    ...     save_file(tensors, str(temp))
    >>> with atomic_directory(model_dir, replace=True) as staging:
    ...     (staging / "config.json").write_text(...)

Temporary files and staging directories live beside their target (same file
system, so the final rename is atomic) and are named ``.<target>.writing-<random>``
so a leftover of a killed process is recognisable (``remove_stale_staging``).
mkstemp/mkdtemp create them private (0600/0700); before the rename they get the
mode a plain ``open()``/``mkdir()`` would have given (0666/0777 minus the umask),
so a teammate can read a trained model when the umask says so.

A failed write removes its temporary file or staging directory and raises
``WriteError`` ("cannot write PATH: CAUSE"). Writers that are not Python file
objects fail with their own exception types (safetensors' ``SafetensorError``,
torch's ``RuntimeError`` around an ``OSError``); those count as write failures too.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import WriteError

STAGING_MARK = ".writing-"
# "Error while serializing: I/O error: No space left on device (os error 28)"
_RUST_IO_ERROR = re.compile(r"([^:]+) \(os error \d+\)")
_umask_lock = threading.Lock()


def current_umask() -> int:
    # os.umask can only be read by setting it; /proc avoids the moment where
    # another thread would create a world-writable file.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """The mode ``open()`` (0666) or ``mkdir()`` (0777) gives a new entry under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def staging_name(target: Path) -> str:
    return f".{target.name}{STAGING_MARK}"


def is_staging(name: str) -> bool:
    """A temporary file or staging directory of this module (or of erckit before it: ``.writing-*``)."""
    return name.startswith(".") and STAGING_MARK in name


def remove_stale_staging(directory: Path, keep: Path | None = None) -> list[Path]:
    """Remove leftovers of killed writers in ``directory``; only for a directory the caller owns
    (e.g. holds the run lock of), since another process's write in progress looks the same."""
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    kept = Path(keep).absolute() if keep is not None else None  # entries of a relative directory are relative
    for entry in entries:
        if not is_staging(entry.name) or entry.absolute() == kept:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it becomes ``path``."""
    path = Path(path)
    _check_parent(path)
    try:
        handle, name = tempfile.mkstemp(prefix=staging_name(path), dir=path.absolute().parent)
    except OSError as error:
        raise WriteError(path, describe(error, path.parent)) from None
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        os.chmod(temp, default_mode())
        os.replace(temp, path)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if not isinstance(error, WriteError) and is_write_failure(error):
            raise WriteError(path, describe(error, path.parent)) from None
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as temp, open(temp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return Path(path)


@contextmanager
def atomic_directory(path: str | Path, replace: bool = False, backup: Path | None = None) -> Iterator[Path]:
    """Yield an empty staging directory that becomes ``path`` when the block ends without error.

    An existing ``path`` is an error unless ``replace``: then it is swapped out and deleted,
    or kept as ``backup`` (whose old content is deleted first) when one is given.
    """
    path = Path(path)
    try:
        path.absolute().parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=staging_name(path), dir=path.absolute().parent))
    except OSError as error:
        raise WriteError(path, describe(error, path.parent)) from None
    try:
        yield staging
        os.chmod(staging, default_mode(directory=True))
        _publish(staging, path, replace, backup)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, WriteError):  # a file inside: name it where it was meant to be
            raise WriteError(_published_name(Path(error.path), staging, path), error.cause) from None
        if is_write_failure(error):
            raise WriteError(path, describe(error, path.parent)) from None
        raise


def _published_name(inner: Path, staging: Path, path: Path) -> Path:
    try:
        return path / inner.relative_to(staging)
    except ValueError:
        return inner


def atomic_save_tensors(tensors: dict, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """safetensors' ``save_file``, atomic; it creates its files 0600 itself, this follows the umask."""
    from safetensors.torch import save_file

    with atomic_path(path) as temp:
        save_file(tensors, str(temp), metadata=metadata)
    return Path(path)


def _publish(staging: Path, path: Path, replace: bool, backup: Path | None) -> None:
    if not (replace and path.exists()):
        os.replace(staging, path)  # an empty directory is replaced; a non-empty one refuses
        return
    if backup is not None:
        if backup.exists():
            shutil.rmtree(backup)
        os.replace(path, backup)
        os.replace(staging, path)
        return
    old = path.with_name(f"{staging_name(path)}old-{os.getpid()}")
    os.replace(path, old)
    os.replace(staging, path)
    shutil.rmtree(old, ignore_errors=True)


def _check_parent(path: Path) -> None:
    parent = path.absolute().parent
    if not parent.is_dir():
        raise WriteError(path, f"directory {parent} does not exist")


def is_write_failure(error: BaseException) -> bool:
    """OSError, or a writer's own error type wrapping one (torch.save) or reporting one (safetensors)."""
    if isinstance(error, OSError) or _os_error_in_chain(error) is not None:
        return True
    # Rust-backed writers (safetensors, tokenizers) report the OS error in their message
    return type(error).__name__ == "SafetensorError" or _RUST_IO_ERROR.search(str(error)) is not None


def describe(error: BaseException, where: Path | None = None) -> str:
    """One line: the operating system's reason where there is one, else the writer's first line."""
    cause = _os_error_in_chain(error)
    if cause is not None:
        text = cause.strerror or str(cause)
    else:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        match = _RUST_IO_ERROR.search(text)
        if match:
            return match.group(1).strip()
    if where is not None and cause is None:
        text += _free_space(where)
    return text


def _os_error_in_chain(error: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None


def _free_space(where: Path) -> str:
    try:
        free = shutil.disk_usage(Path(where).absolute()).free
    except OSError:
        return ""
    return f" ({free // 1024} KiB free on that disk)" if free < 64 * 1024 * 1024 else ""


__all__ = [
    "atomic_directory",
    "atomic_path",
    "atomic_save_tensors",
    "atomic_write_bytes",
    "atomic_write_text",
    "current_umask",
    "default_mode",
    "describe",
    "is_staging",
    "remove_stale_staging",
]


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes, read in blocks (a model's weights can be gigabytes)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
