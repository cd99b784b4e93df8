"""``erckit train`` with its output redirected to a file, as in a batch job or ``nohup``.

The log must say up front where the run computes and writes (device, run
directory, data root, cache, demo generation), and hold no progress-bar debris:
no blank lines, no terminal control codes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = """\
seed = 0
[data]
dataset = "erckit.Demo.v1"
root = "data/demo"
train_dialogues = 4
dev_dialogues = 2
test_dialogues = 2
media_policy = "zero"

[model.encoders.text]
factory = "example.BagOfWords.v1"
buckets = 64
dim = 8

[model.encoders.audio]
factory = "erckit.LogMelAudio.v1"
n_mels = 8
dim = 8
layers = 1
heads = 2
max_seconds = 1.0

[model.fuser]
factory = "erckit.ConcatFuser.v1"
hidden = 8

[[stages]]
kind = "supervised"
encoders = ["text"]
epochs = 2

[[stages]]
kind = "distill"
teacher = "text"
students = ["audio"]
losses = [{ factory = "erckit.KLDistill.v1" }]

[[stages]]
kind = "fuse"
"""


@pytest.mark.slow  # a real training process: ~10 s on 2 idle cores
def test_a_redirected_training_log_is_clean_and_says_where_things_go(tmp_path: Path) -> None:
    (tmp_path / "small.toml").write_text(RECIPE, encoding="utf-8")
    log = tmp_path / "train.log"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    with log.open("w") as handle:  # stdout and stderr into one file, like `> train.log 2>&1`
        code = subprocess.run([sys.executable, "-m", "erckit", "train", "small.toml", "--device", "cpu"],
                              cwd=tmp_path, stdout=handle, stderr=subprocess.STDOUT, env=env, timeout=300).returncode
    text = log.read_text(encoding="utf-8")
    assert code == 0, text
    lines = text.splitlines()

    assert "" not in [line.strip() for line in lines], f"blank lines in the log:\n{text}"
    assert "\x1b" not in text and "\r" not in text  # no cursor movement or colour codes from bars

    run_dir, demo, cache = tmp_path / "runs" / "small", tmp_path / "data" / "demo", tmp_path / ".erckit-cache"
    assert lines[0].startswith("training small on cpu (fp32, ") and " threads) " in lines[0], lines[0]
    assert lines[0].endswith(f"into {run_dir}")
    assert lines[1] == f"data erckit.Demo.v1 from {demo}; cache {cache}"
    assert lines[2] == f"generating the demo data set in {demo} (first use) ..."
    assert lines[3].startswith(f"demo data set written to {demo}: ") and " MB, " in lines[3]
    assert (demo / "demo.json").is_file() and (run_dir / "model" / "config.json").is_file() and cache.is_dir()
    assert any(line.startswith("decoding media: ") for line in lines)  # the media bar, as one plain line
