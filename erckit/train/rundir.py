"""Owning a run directory: the marker that says erckit made it, and the lock held while a run uses it.

``.erckit-run`` is created in the run directory when a run starts and is both:
- the marker: ``--overwrite`` empties only a directory that has it (and never
  ``~``, ``/``, the current directory or a parent of it), so a folder that
  merely has the same name as a run is never deleted;
- the lock: the running process holds an exclusive ``flock`` on it and writes its
  pid into it. The operating system drops the lock when the process dies (also on
  SIGKILL), so a second run into the same directory is refused while the first
  one lives and accepted the moment it is gone.

Only rank 0 of a DDP run claims the directory. See docs/training.md ("Run directory").
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Callable

from ..errors import ErckitError

MARKER = ".erckit-run"
# What a run writes; a restart before the first checkpoint clears these and nothing else.
RUN_OUTPUTS = ("metrics.jsonl", "recipe.toml", "test_report.json", "provenance.json", "checkpoints")


class RunDirectoryError(ErckitError):
    """The run directory cannot be used as asked (exists, in use, not made by erckit, protected)."""


class RunLock:
    """An exclusive lock on ``directory/.erckit-run``, held until ``release()`` or process exit."""

    def __init__(self, directory: Path, descriptor: int):
        self.directory = directory
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            _unlock(self._descriptor)
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_run_dir(directory: Path) -> RunLock:
    """Create the marker if needed and lock it; refuse in one line naming the holder if it is taken."""
    marker = directory / MARKER
    try:
        descriptor = os.open(marker, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise RunDirectoryError(f"cannot write to run directory {directory}: {error.strerror or error}") from None
    if not _try_lock(descriptor):
        holder = _describe_holder(descriptor)
        os.close(descriptor)
        raise RunDirectoryError(
            f"run directory {directory} is in use by another erckit run ({holder}); "
            "wait for it to finish, stop it, or choose another --output"
        )
    try:
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(descriptor, 0)
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.write(descriptor, (json.dumps(owner) + "\n").encode("utf-8"))
    except OSError as error:
        _unlock(descriptor)
        os.close(descriptor)
        raise RunDirectoryError(f"cannot write to run directory {directory}: {error.strerror or error}") from None
    return RunLock(directory, descriptor)


def claim_run_dir(
    directory: Path,
    *,
    resume: bool = False,
    resume_from: Path | None = None,
    overwrite: bool = False,
    has_checkpoint: Callable[[Path], bool],
    say: Callable[[str], None] = print,
) -> RunLock:
    """Lock ``directory`` for a run, after deciding whether this start may use it.

    - new or empty: created and marked;
    - ``--overwrite``: emptied, only if marked and not a protected path;
    - ``--resume``: continued; a marked run that never reached a checkpoint starts over;
    - plain start: only a marked run that never reached a checkpoint (it starts over).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise RunDirectoryError(f"run directory {directory} is a file; choose another --output")
    entries = _entries(directory)
    if not entries and resume and resume_from is None:
        raise RunDirectoryError(f"--resume: no run in {directory} (no checkpoint); start without --resume")
    if not entries:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunDirectoryError(f"cannot write to run directory {directory}: {error.strerror or error}") from None
        return lock_run_dir(directory)
    marked = (directory / MARKER).is_file()
    if overwrite:
        if not marked:
            raise RunDirectoryError(
                f"--overwrite refused: {directory} was not made by erckit (no {MARKER} in it) and holds "
                f"{_sample(entries)}; delete it yourself or choose another --output"
            )
        _refuse_protected(directory)
        lock = lock_run_dir(directory)
        _remove(_entries(directory), keep=directory / MARKER)
        say(f"--overwrite: emptied {directory}")
        return lock
    checkpointed = has_checkpoint(directory)
    if not (marked or checkpointed):  # a run of an older erckit is recognised by its checkpoint
        raise RunDirectoryError(
            f"run directory {directory} already exists and was not made by erckit (no {MARKER}; it holds "
            f"{_sample(entries)}); choose another --output"
        )
    never_checkpointed = not checkpointed and not (directory / "model").exists()
    if not (resume or resume_from is not None or never_checkpointed):
        lock_run_dir(directory).release()  # a run in progress is named by its pid rather than "exists"
        again = " or --overwrite to start it again" if marked else ""
        raise RunDirectoryError(
            f"run directory {directory} already exists; pass --resume to continue that run{again} "
            "(or choose another --output)"
        )
    lock = lock_run_dir(directory)
    if never_checkpointed and resume_from is None:
        _remove([directory / name for name in RUN_OUTPUTS if (directory / name).exists()])
        say(f"{directory}: the run there stopped before its first checkpoint; starting it from the beginning")
    return lock


def _refuse_protected(directory: Path) -> None:
    resolved = directory.resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path(resolved.anchor):
        what = "the file system root"
    elif resolved == Path.home().resolve():
        what = "your home directory"
    elif resolved == cwd:
        what = "the current directory"
    elif resolved in cwd.parents:
        what = "a parent of the current directory"
    else:
        return
    raise RunDirectoryError(f"--overwrite refused: {directory} is {what}; choose another --output")


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    except OSError as error:
        raise RunDirectoryError(f"cannot read run directory {directory}: {error.strerror or error}") from None


def _sample(entries: list[Path], limit: int = 4) -> str:
    names = [entry.name + ("/" if entry.is_dir() and not entry.is_symlink() else "") for entry in entries]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _remove(entries: list[Path], keep: Path | None = None) -> None:
    for entry in entries:
        if entry == keep:
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as error:
            raise RunDirectoryError(f"cannot remove {entry}: {error.strerror or error}") from None


def _describe_holder(descriptor: int) -> str:
    try:
        os.lseek(descriptor, 0, os.SEEK_SET)
        owner = json.loads(os.read(descriptor, 4096).decode("utf-8"))
        return f"pid {int(owner['pid'])} on {owner.get('host', '?')}, started {owner.get('started', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is starting"


try:
    import fcntl

    def _try_lock(descriptor: int) -> bool:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(descriptor: int) -> None:
        fcntl.flock(descriptor, fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _try_lock(descriptor: int) -> bool:
        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(descriptor: int) -> None:
        os.lseek(descriptor, 0, os.SEEK_SET)
        msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
