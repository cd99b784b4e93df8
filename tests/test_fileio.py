"""Atomic writes: final modes follow the umask like open()/mkdir(); failures leave nothing behind."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from erckit.errors import WriteError
from erckit.fileio import atomic_directory, atomic_path, atomic_write_bytes, atomic_write_text, remove_stale_staging


@pytest.fixture
def umask() -> Iterator[callable]:
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o027, 0o640, 0o750)])
def test_modes_follow_the_umask(tmp_path: Path, umask, mask: int, file_mode: int, dir_mode: int) -> None:
    umask(mask)
    assert mode(atomic_write_text(tmp_path / "a.json", "{}")) == file_mode
    assert mode(atomic_write_bytes(tmp_path / "b.bin", b"x")) == file_mode
    with atomic_directory(tmp_path / "model") as staging:
        (staging / "config.json").write_text("{}")
    assert mode(tmp_path / "model") == dir_mode
    assert mode(tmp_path / "model" / "config.json") == file_mode
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what a plain open() gives: the reference
    assert mode(plain) == file_mode


def test_replacing_a_directory_swaps_it_whole(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_directory(target) as staging:
        (staging / "old.txt").write_text("old")
    with atomic_directory(target, replace=True) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging or swapped-out copy left


def test_replacing_keeps_a_backup_when_asked(tmp_path: Path) -> None:
    latest, previous = tmp_path / "latest", tmp_path / "previous"
    for number in (1, 2, 3):
        with atomic_directory(latest, replace=True, backup=previous) as staging:
            (staging / "n").write_text(str(number))
    assert (latest / "n").read_text() == "3" and (previous / "n").read_text() == "2"


def _full_disk_safetensors(path: Path) -> None:
    from safetensors import SafetensorError

    path.write_bytes(b"half")
    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def _full_disk_torch(path: Path) -> None:
    # torch.save to a file object wraps the file's OSError in a RuntimeError (as on a real full disk)
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


@pytest.mark.parametrize("writer", [_full_disk_safetensors, _full_disk_torch])
def test_a_full_disk_is_one_line_and_leaves_no_staging(tmp_path: Path, writer) -> None:
    with pytest.raises(WriteError) as info:
        with atomic_path(tmp_path / "w.safetensors") as temp:
            writer(temp)
    assert str(info.value) == f"cannot write {tmp_path / 'w.safetensors'}: No space left on device"
    with pytest.raises(WriteError, match="No space left on device"):
        with atomic_directory(tmp_path / "model") as staging:
            writer(staging / "model.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_a_bug_in_the_writer_keeps_its_traceback(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        with atomic_directory(tmp_path / "model") as staging:
            (staging / "x").write_text("x")
            raise KeyError("not a write failure")
    assert list(tmp_path.iterdir()) == []


def test_missing_parent_is_named(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match=f"directory {tmp_path / 'nope'} does not exist"):
        atomic_write_text(tmp_path / "nope" / "a.json", "{}")


def test_remove_stale_staging_keeps_everything_else(tmp_path: Path) -> None:
    (tmp_path / ".latest.writing-abc").mkdir()
    (tmp_path / ".writing-old").mkdir()  # erckit before the helper named its staging folders so
    (tmp_path / ".a.json.writing-x1").write_text("half")
    keep = tmp_path / ".latest.writing-now"
    keep.mkdir()
    for name in ("latest", ".erckit-run", "notes.writing-draft.txt"):
        (tmp_path / name).write_text("")
    remove_stale_staging(tmp_path, keep=keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".erckit-run", ".latest.writing-now", "latest", "notes.writing-draft.txt"]


def test_the_staging_folder_in_use_survives_a_relative_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run directories are often relative (runs/NAME); the folder being written is absolute."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with atomic_directory(Path("runs") / "latest") as staging:
        remove_stale_staging(Path("runs"), keep=staging)
        (staging / "state.json").write_text("{}")
    assert (tmp_path / "runs" / "latest" / "state.json").read_text() == "{}"


def test_file_sha256_reads_a_file_larger_than_one_block(tmp_path):
    import hashlib
    import os

    from erckit.fileio import file_sha256

    data = os.urandom((1 << 22) + 12345)  # crosses the 4 MiB block boundary
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert file_sha256(path) != hashlib.sha256(data).hexdigest()
