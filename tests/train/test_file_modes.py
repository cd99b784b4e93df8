"""What a run writes is readable by others when the umask says so (issue 13 item 2).

mkstemp/mkdtemp create private entries; renamed into place unchanged, a trained
model, the demo data and a plot stayed 0600/0700 under umask 022.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from erckit.cli.main import main

from .conftest import TEXT, run_training, stage

# What group/other may do with a file / a directory under each umask (0 = nothing).
OTHERS = {0o022: (0o044, 0o055), 0o077: (0, 0)}


def _modes(root: Path) -> dict[Path, int]:
    return {path: stat.S_IMODE(path.stat().st_mode) for path in [root, *root.rglob("*")]}


def _assert_others(root: Path, mask: int) -> None:
    file_bits, dir_bits = OTHERS[mask]
    for path, mode in _modes(root).items():
        expected = dir_bits if path.is_dir() else file_bits
        assert mode & 0o077 == expected, f"{path}: {oct(mode)} under umask {oct(mask)}"


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_model_demo_and_plot_follow_the_umask(make_recipe, tmp_path: Path, mask: int) -> None:
    import torch

    from erckit.data.cache import DiskCache
    from erckit.data.demo import ensure_demo

    recipe = make_recipe(stage("supervised", encoders=["text"], epochs=1, lr=0.01), encoders=TEXT, fuser=False)
    previous = os.umask(mask)
    try:
        result = run_training(recipe, tmp_path / "run")
        demo = ensure_demo(tmp_path / "demo", seed=0, dialogues={"train": 2, "dev": 1, "test": 1})
        plot = tmp_path / "cm.png"
        assert main(["evaluate", str(result.model_dir), str(demo / "test.jsonl"), "--plot", str(plot), "--json", str(tmp_path / "eval.json")]) == 0
        assert main(["predict", str(result.model_dir), str(demo / "test.jsonl"), "-o", str(tmp_path / "predictions.jsonl")]) == 0
        cache = DiskCache(tmp_path / "cache-entries")
        entry = cache.put("ab" * 32, {"x": torch.zeros(2)})
    finally:
        os.umask(previous)
    _assert_others(result.model_dir, mask)
    assert (result.model_dir / "model.safetensors") in _modes(result.model_dir)
    _assert_others(result.run_dir, mask)  # checkpoints, metrics, reports as well
    _assert_others(demo, mask)
    _assert_others(plot, mask)
    _assert_others(tmp_path / "eval.json", mask)
    _assert_others(tmp_path / "predictions.jsonl", mask)
    _assert_others(cache.root, mask)
    assert entry.is_file()
    if mask == 0o022:
        assert stat.S_IMODE((result.model_dir / "model.safetensors").stat().st_mode) == 0o644
        assert stat.S_IMODE(result.model_dir.stat().st_mode) == 0o755
