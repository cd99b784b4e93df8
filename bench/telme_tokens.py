"""TelME teacher token ids: erckit's ``preprocessing = "authors"`` against the authors' pipeline under transformers 4.27.2.

    python -m venv /work/venv427 && /work/venv427/bin/pip install "transformers==4.27.2"   # once; no torch needed
    python -m bench.telme_tokens                                 # MELD dev, a tokenizer trained on MELD train
    python -m bench.telme_tokens --tokenizer DIR                 # DIR with roberta-large's vocab.json + merges.txt

Both sides read the same rows of a MELD CSV in file order, with a ``Video_Path``
column added as the authors' preprocessing.py requires (written to a temporary
copy; the text is untouched). The reference side runs in the 4.27.2 venv as a
subprocess: a transcription of the authors' preprocessing.py (sessions by
consecutive Dialogue_ID, speaker numbers with their carry-over from the previous
dialogue), make_batchs's string and encode_right_truncated, tokenised by
transformers 4.27.2's own ``RobertaTokenizer`` with the nine speaker tokens added.
The erckit side builds ``Sample`` objects from the same rows, numbers speakers
with the same carry-over (written out separately here: in erckit the MELD
reader's authors profile supplies it) and asks ``telme.RobertaTeacher.v1``
(``preprocessing = "authors"``, a tiny random backbone of 514 positions: only the
ids matter) for its ids. Prints utterances compared, identical count, the first
difference if any, and what the rows exercised (cuts at 511, speakers past 9,
literal special tokens, whitespace at the ends of utterances).

Without ``--tokenizer`` a byte-level BPE tokenizer is trained on the MELD train
utterances (RoBERTa's special tokens, the same slow/fast tokenizer classes and code
paths as roberta-large, different ids): no model hub here.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = Path("/work/venv427/bin/python")
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

# Run by the 4.27.2 venv's python: argv = [csv path, tokenizer dir, output path].
REFERENCE = r'''
import csv, json, sys
import transformers
from transformers import RobertaTokenizer

csv_path, tokenizer_dir, out_path = sys.argv[1:4]
tokenizer = RobertaTokenizer.from_pretrained(tokenizer_dir)
tokenizer.add_special_tokens({"additional_special_tokens": ["<s%d>" % k for k in range(1, 10)]})

# preprocessing.py: a speaker is numbered in the running list, then the list is emptied when
# that row opens a new dialogue (so the first row of a dialogue keeps the previous one's number).
sessions, session, seen, previous = [], [], [], None
with open(csv_path, encoding="utf-8") as handle:
    rows = csv.reader(handle)
    header = next(rows)
    col = {name: header.index(name) for name in ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Video_Path")}
    for row in rows:
        speaker = row[col["Speaker"]]
        if speaker not in seen:
            seen.append(speaker)
        number = seen.index(speaker)
        line = [number, row[col["Utterance"]], row[col["Video_Path"]], row[col["Emotion"]]]
        if previous is None or row[col["Dialogue_ID"]] == previous:
            session.append(line)
        else:
            sessions.append(session)
            session, seen = [line], []
        previous = row[col["Dialogue_ID"]]
sessions.append(session)

with open(out_path, "w", encoding="utf-8") as out:
    out.write(json.dumps({"transformers": transformers.__version__, "vocabulary": len(tokenizer)}) + "\n")
    for session in sessions:
        for end in range(1, len(session) + 1):
            context = session[:end]
            text = ""
            for number, utterance, _, _ in context:
                text += "<s" + str(number + 1) + "> " + utterance + " "
            text = text.strip() + " </s> " + "Now <s" + str(context[-1][0] + 1) + "> feels"
            tokens = tokenizer.tokenize(text)[-511:]
            ids = tokenizer.convert_tokens_to_ids(tokens) + [tokenizer.mask_token_id]
            out.write(json.dumps({"numbers": [c[0] + 1 for c in context], "ids": ids}) + "\n")
'''


def train_tokenizer(train_csv: Path, directory: Path, vocab_size: int) -> Path:
    """vocab.json + merges.txt of a byte-level BPE (GPT-2/RoBERTa pre-tokenisation) trained on ``train_csv``'s utterances."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    with open(train_csv, encoding="utf-8", newline="") as handle:
        texts = [row["Utterance"] for row in csv.DictReader(handle)]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer)
    directory.mkdir(parents=True, exist_ok=True)
    backend.model.save(str(directory))
    return directory


# --perturb: what MELD's own text never has, applied by row number (deterministic).
EDGE_TEXTS = (
    lambda t: "  " + t + "  ", lambda t: t + " <s3>", lambda t: "<mask> " + t, lambda t: t.replace(" ", " </s> ", 1),
    lambda t: "", lambda t: t + " <s12> x", lambda t: "\t" + t + "\u00a0", lambda t: t + "<pad><unk> <s>",
    lambda t: " ".join([t] * 40), lambda t: "\u2009" + t + " \n", lambda t: t + "   ",
)


def authors_csv(source: Path, target: Path, clip_dir: str, perturb: bool = False) -> Path:
    """``source`` with the Video_Path column the authors' preprocessing.py reads; every other field as it was
    (with ``perturb``: edge-case texts on some rows, and more speakers, so that numbers pass 9)."""
    with open(source, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    dialogue, utterance = header.index("Dialogue_ID"), header.index("Utterance_ID")
    text, speaker = header.index("Utterance"), header.index("Speaker")
    with open(target, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*header, "Video_Path"])
        for number, row in enumerate(rows[1:]):
            row = list(row)
            if perturb:
                if number % 3 == 0:
                    row[text] = EDGE_TEXTS[(number // 3) % len(EDGE_TEXTS)](row[text])
                if number % 2 == 0:
                    row[speaker] = f"guest{number % 17}"
            writer.writerow([*row, f"{clip_dir}/dia{row[dialogue]}_utt{row[utterance]}.mp4"])
    return target


def carry_over_numbers(speakers_by_dialogue: list[list[str]]) -> list[list[int]]:
    """1-based numbers as the authors' preprocessing.py gave them: a dialogue's first row is numbered
    in the previous dialogue's table, which is only then emptied (that first speaker is not entered in
    the new one)."""
    numbers: list[list[int]] = []
    table: list[str] = []
    for d, speakers in enumerate(speakers_by_dialogue):
        row_numbers = []
        for i, speaker in enumerate(speakers):
            if speaker not in table:
                table.append(speaker)
            row_numbers.append(table.index(speaker) + 1)
            if i == 0 and d > 0:
                table = []
        numbers.append(row_numbers)
    return numbers


def erckit_samples(csv_path: Path) -> list[Any]:
    from erckit.data.types import Sample, Utterance

    dialogues: list[tuple[str, list[Utterance]]] = []
    with open(csv_path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if not dialogues or dialogues[-1][0] != row["Dialogue_ID"]:
                dialogues.append((row["Dialogue_ID"], []))
            dialogues[-1][1].append(Utterance(speaker=row["Speaker"], text=row["Utterance"]))
    numbers = carry_over_numbers([[u.speaker for u in utterances] for _, utterances in dialogues])
    samples = []
    for (dialogue, utterances), dialogue_numbers in zip(dialogues, numbers):
        context = tuple(utterances)
        for end in range(1, len(context) + 1):
            samples.append(Sample(f"dia{dialogue}", end - 1, context[:end], tuple(dialogue_numbers[:end])))
    return samples


def erckit_ids(samples: list[Any], tokenizer_dir: Path) -> tuple[list[list[int]], float, Any]:
    from erckit_telme.plugin import roberta_teacher

    from transformers import AutoTokenizer

    vocabulary = len(AutoTokenizer.from_pretrained(str(tokenizer_dir))) + 9
    config = dict(model_type="roberta", hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=32, max_position_embeddings=514, vocab_size=vocabulary)
    teacher = roberta_teacher(num_classes=7, config=config, tokenizer=str(tokenizer_dir), preprocessing="authors")
    started = time.perf_counter()
    ids = [teacher.prompt_ids(sample) for sample in samples]
    return ids, time.perf_counter() - started, teacher.tokenizer


def run(meld_dir: Path, split: str, tokenizer: Path | None, python: Path, vocab_size: int, show: int,
        perturb: bool = False) -> dict[str, Any]:
    if not python.is_file():
        raise SystemExit(f"{python} not found: python -m venv /work/venv427 && /work/venv427/bin/pip install 'transformers==4.27.2'")
    with tempfile.TemporaryDirectory(prefix="telme_tokens_") as scratch:
        scratch_dir = Path(scratch)
        if tokenizer is None:
            tokenizer = train_tokenizer(meld_dir / "train_sent_emo.csv", scratch_dir / "tokenizer", vocab_size)
            tokenizer_note = f"byte-level BPE trained on MELD train ({vocab_size} max), not roberta-large's ids"
        else:
            tokenizer_note = str(tokenizer)
        # transformers 5 needs to be told the class for a folder with only vocab.json + merges.txt.
        config_file = tokenizer / "tokenizer_config.json"
        if not config_file.exists():
            staged = scratch_dir / "tokenizer_files"
            staged.mkdir(exist_ok=True)
            for name in ("vocab.json", "merges.txt"):
                (staged / name).write_bytes((tokenizer / name).read_bytes())
            (staged / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "RobertaTokenizer"}))
            tokenizer = staged
        clip_dir = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}[split]
        data = authors_csv(meld_dir / f"{split}_sent_emo.csv", scratch_dir / f"{split}_authors.csv", clip_dir, perturb)

        started = time.perf_counter()
        out = scratch_dir / "reference.jsonl"
        subprocess.run([str(python), "-c", REFERENCE, str(data), str(tokenizer), str(out)], check=True,
                       env={**os.environ, "TRANSFORMERS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""})
        reference_seconds = time.perf_counter() - started
        lines = out.read_text(encoding="utf-8").splitlines()
        meta, reference = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]

        samples = erckit_samples(data)
        ours, seconds, tok = erckit_ids(samples, tokenizer)

    if len(reference) != len(samples):
        raise SystemExit(f"the reference made {len(reference)} samples, erckit {len(samples)}")
    numbering_differs = sum(r["numbers"] != list(s.speaker_ids) for r, s in zip(reference, samples))
    differing = [i for i, (r, o) in enumerate(zip(reference, ours)) if r["ids"] != o]
    specials = ("<s>", "</s>", "<pad>", "<unk>", "<mask>", *(f"<s{k}>" for k in range(1, 10)))
    result = {
        "split": split + (" (perturbed)" if perturb else ""), "tokenizer": tokenizer_note, "reference_transformers": meta["transformers"],
        "vocabulary": meta["vocabulary"], "utterances": len(samples), "identical": len(samples) - len(differing),
        "numbering_differs": numbering_differs,
        "cut_at_511": sum(len(r["ids"]) == 512 for r in reference),
        "speaker_numbers_over_9": sum(max(s.speaker_ids) > 9 for s in samples),
        "literal_special_tokens": sum(any(t in u.text for t in specials) for s in samples for u in s.context[-1:]),
        "edge_whitespace": sum(u.text != u.text.strip() for s in samples for u in s.context[-1:]),
        "erckit_ms_per_utterance": 1000 * seconds / len(samples),
        "reference_seconds": reference_seconds,
        "differences": [],
    }
    for i in differing[:show]:
        r, o = reference[i]["ids"], ours[i]
        at = next((j for j, (a, b) in enumerate(zip(r, o)) if a != b), min(len(r), len(o)))
        result["differences"].append({
            "sample": samples[i].key, "first_differing_position": at,
            "authors": tok.convert_ids_to_tokens(r[max(0, at - 5) : at + 5]),
            "erckit": tok.convert_ids_to_tokens(o[max(0, at - 5) : at + 5]),
        })
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.telme_tokens", description=__doc__.split("\n\n")[0])
    parser.add_argument("--meld-dir", help="folder with the MELD CSVs (default: $MELD_DIR or ../shared/data/meld)")
    parser.add_argument("--split", choices=("train", "dev", "test"), default="dev")
    parser.add_argument("--tokenizer", type=Path, help="folder with vocab.json + merges.txt (default: train one on MELD train)")
    parser.add_argument("--vocab-size", type=int, default=16_000, help="for the locally trained tokenizer")
    parser.add_argument("--python", type=Path, default=VENV_PYTHON, help=f"the transformers 4.27.2 venv's python (default {VENV_PYTHON})")
    parser.add_argument("--perturb", action="store_true",
                        help="edge cases MELD never has: whitespace at the ends, literal special tokens, empty and "
                             "very long texts, speakers past 9 (both sides get the same rows)")
    parser.add_argument("--show", type=int, default=1, help="differences to print (default: the first)")
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)

    meld = Path(args.meld_dir or os.environ.get("MELD_DIR") or REPO.parent / "shared" / "data" / "meld").absolute()
    result = run(meld, args.split, args.tokenizer, args.python, args.vocab_size, args.show, args.perturb)
    print(f"tokenizer: {result['tokenizer']} ({result['vocabulary']} tokens with the speaker tokens); "
          f"reference: transformers {result['reference_transformers']}")
    print(f"MELD {result['split']}: {result['utterances']:,} utterances compared, {result['identical']:,} identical "
          f"(speaker numbering differs in {result['numbering_differs']})")
    print(f"rows exercised: {result['cut_at_511']} cut at 511 tokens, {result['speaker_numbers_over_9']} with a speaker "
          f"numbered past 9, {result['literal_special_tokens']} targets with a literal special token, "
          f"{result['edge_whitespace']} targets with whitespace at an end")
    print(f"erckit: {result['erckit_ms_per_utterance']:.2f} ms per utterance; reference run {result['reference_seconds']:.1f} s")
    for difference in result["differences"]:
        print(f"first difference: {json.dumps(difference, ensure_ascii=False)}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result["identical"] == result["utterances"] else 1


if __name__ == "__main__":
    sys.exit(main())
