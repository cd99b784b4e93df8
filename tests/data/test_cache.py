from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from erckit.data.cache import DiskCache, cache_key, file_identity
from erckit.data.types import AudioSpec, VideoSpec


def test_key_is_canonical_and_sensitive() -> None:
    a = cache_key({"b": 1, "a": [1.0, None], "spec": AudioSpec()})
    assert a == cache_key({"spec": AudioSpec(), "a": [1.0, None], "b": 1})
    assert a != cache_key({"b": 1, "a": [1.0, None], "spec": AudioSpec(sample_rate=8000)})
    # Same field values, different spec class: different keys.
    assert cache_key({"s": AudioSpec()}) != cache_key({"s": VideoSpec()})


def test_file_identity_changes_with_content(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    first = file_identity(path)
    path.write_bytes(b"three")
    os.utime(path, ns=(first["mtime_ns"] + 10_000, first["mtime_ns"] + 10_000))
    assert cache_key({"f": first}) != cache_key({"f": file_identity(path)})


def test_put_get_roundtrip_and_get_or_compute(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "cache")
    calls = []

    def compute():
        calls.append(1)
        return {"audio": torch.arange(5, dtype=torch.float32), "mask": torch.ones(2, dtype=torch.bool)}

    first, hit = cache.get_or_compute({"x": 1}, compute)
    second, hit2 = cache.get_or_compute({"x": 1}, compute)
    assert (hit, hit2) == (False, True) and len(calls) == 1
    assert torch.equal(first["audio"], second["audio"]) and second["mask"].dtype == torch.bool
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # no temp files left behind


def test_corrupt_entry_is_a_miss_and_rewritten(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    key = cache_key({"x": 2})
    cache.put(key, {"v": torch.ones(3)})
    cache.path(key).write_bytes(b"\x00\x01garbage")
    assert cache.get(key) is None and cache.stats.corrupt == 1
    value, hit = cache.get_or_compute({"x": 2}, lambda: {"v": torch.zeros(3)})
    assert not hit and torch.equal(cache.get(key)["v"], torch.zeros(3))


def test_cache_is_picklable(tmp_path: Path) -> None:
    import pickle

    cache = pickle.loads(pickle.dumps(DiskCache(tmp_path)))
    cache.put(cache_key({"k": 1}), {"v": torch.ones(1)})
    assert cache.get(cache_key({"k": 1})) is not None


def test_full_disk_while_storing_an_entry_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch) -> None:
    import safetensors.torch
    import torch
    from safetensors import SafetensorError

    from erckit.data.cache import DiskCache
    from erckit.errors import WriteError

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    cache = DiskCache(tmp_path / "cache")
    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(WriteError) as info:
        cache.put("ab" * 32, {"x": torch.zeros(3)})
    assert str(info.value) == f"cannot write {cache.path('ab' * 32)}: No space left on device"
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_cache_root_that_is_a_file_is_named(tmp_path) -> None:
    from erckit.data.cache import DiskCache
    from erckit.errors import DataError

    (tmp_path / "cache").write_text("x")
    with pytest.raises(DataError, match=r"cache directory .*cache cannot be used: it \(or a parent\) is a file"):
        DiskCache(tmp_path / "cache").ensure_writable()
