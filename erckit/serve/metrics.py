"""Counters and histograms in the Prometheus text format (version 0.0.4), without a client library.

Written from the event loop and the inference thread alike, so every update
takes one lock; a scrape renders a consistent snapshot under the same lock.
"""

from __future__ import annotations

import math
import threading
from typing import Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """``count`` and ``observe`` by metric name and labels; ``render`` is the /metrics page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}  # name -> (type, help)
        self._counters: dict[str, dict[tuple, float]] = {}
        self._histograms: dict[str, tuple[tuple[float, ...], dict[tuple, list[float]]]] = {}

    def counter(self, name: str, help: str) -> None:
        self._help[name] = ("counter", help)
        self._counters.setdefault(name, {})

    def histogram(self, name: str, help: str, buckets: Iterable[float]) -> None:
        self._help[name] = ("histogram", help)
        self._histograms.setdefault(name, (tuple(buckets), {}))

    def count(self, name: str, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        buckets, series = self._histograms[name]
        with self._lock:
            # Per bucket count (not cumulative), then sum and count.
            cells = series.setdefault(key, [0.0] * (len(buckets) + 3))
            index = next((i for i, bound in enumerate(buckets) if value <= bound), len(buckets))
            cells[index] += 1
            cells[-2] += value
            cells[-1] += 1

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, (kind, help) in self._help.items():
                lines += [f"# HELP {name} {help}", f"# TYPE {name} {kind}"]
                if kind == "counter":
                    for key, value in sorted(self._counters[name].items()):
                        lines.append(f"{name}{_labels(key)} {_number(value)}")
                    continue
                buckets, series = self._histograms[name]
                for key, cells in sorted(series.items()):
                    running = 0.0
                    for bound, cell in zip((*buckets, math.inf), cells):
                        running += cell
                        lines.append(f"{name}_bucket{_labels((*key, ('le', _number(bound))))} {_number(running)}")
                    lines.append(f"{name}_sum{_labels(key)} {_number(cells[-2])}")
                    lines.append(f"{name}_count{_labels(key)} {_number(cells[-1])}")
        return "\n".join(lines) + "\n"


def server_metrics() -> Metrics:
    """The metrics ``erckit serve`` keeps (docs/serve.md, "Metrics")."""
    metrics = Metrics()
    metrics.counter("erckit_requests_total", "HTTP requests and WebSocket messages answered, by route and status")
    metrics.counter("erckit_utterances_total", "utterances predicted")
    metrics.counter("erckit_batches_total", "forward passes run by the inference thread")
    metrics.counter("erckit_batches_closed_early_total",
                    "batches run before --max-wait-ms because every open conversation's turn was in them")
    metrics.histogram("erckit_batch_size", "utterances per forward pass", BATCH_BUCKETS)
    metrics.histogram("erckit_request_latency_seconds", "time from a request's arrival to its answer, by route",
                      LATENCY_BUCKETS)
    metrics.histogram("erckit_batch_seconds", "time the inference thread spent on one batch", LATENCY_BUCKETS)
    return metrics
