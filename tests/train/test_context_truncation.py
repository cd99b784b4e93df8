"""Training says once per run how many contexts its text encoder cut to the token limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import CTX, run_training, text_stages


def teacher_table(demo_root: Path, max_length: int) -> str:
    return (
        '[model.encoders.text]\nfactory = "telme.RobertaTeacher.v1"\n'
        f"tokenizer = {json.dumps(str(demo_root / 'tokenizer'))}\nmax_length = {max_length}\nembedding_dim = 16\n"
        'config = { model_type = "roberta", hidden_size = 16, num_hidden_layers = 1, num_attention_heads = 2, '
        "intermediate_size = 32, max_position_embeddings = 66, vocab_size = 300 }\n"
    )


@pytest.mark.slow
def test_truncated_contexts_reported_once_per_run(make_recipe, demo_root: Path, tmp_path: Path, capsys) -> None:
    recipe = make_recipe(stages=text_stages(epochs=1), encoders=teacher_table(demo_root, 16) + CTX)
    run_training(recipe, tmp_path / "run")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "contexts were longer" in line]
    utterances = sum(len(json.loads(line)["utterances"]) for split in ("train", "dev", "test")
                     for line in (demo_root / f"{split}.jsonl").read_text().splitlines() if line.strip())
    # One line for the run, although the teacher featurised train and dev in several stages.
    assert len(lines) == 1, err
    assert "telme.RobertaTeacher:" in lines[0] and f"of {utterances:,} contexts" in lines[0] and "16-token limit" in lines[0]
