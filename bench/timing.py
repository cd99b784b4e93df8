"""Timing that holds on a shared machine whose speed drifts by minutes."""

from __future__ import annotations

import time
from typing import Any, Callable


def best_of_turns(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Best wall-clock seconds of each run over ``rounds`` rounds, the runs taking turns
    within a round: a slow spell hits them alike, so their ratio holds, and the best is the
    run least disturbed by other work (as ``timeit`` reports). A first round also pays
    one-off costs (allocation, first-call set-up) that the best of later rounds leaves out."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best
