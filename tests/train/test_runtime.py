"""Thread policy: a fixed count per run from the CPUs the process may use, passive OpenMP waits."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from erckit.errors import ErckitError
from erckit.recipe.load import validate
from erckit.train.runtime import available_cpus, configure_threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_auto_uses_the_cpus_of_the_affinity_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert configure_threads("auto") == available_cpus() == torch.get_num_threads()


def test_auto_keeps_a_count_set_with_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)  # what torch read from OMP_NUM_THREADS when it loaded
    assert configure_threads("auto") == 1 == torch.get_num_threads()


def test_auto_shares_the_cpus_among_local_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert configure_threads("auto") == 2 == torch.get_num_threads()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert configure_threads("auto") == 1


def test_an_explicit_count_is_used_as_given() -> None:
    assert configure_threads(1) == 1 == torch.get_num_threads()


@pytest.mark.parametrize("bad", [0, -2, "many", True])
def test_a_bad_count_is_a_usage_error(bad: object) -> None:
    with pytest.raises(ErckitError, match="threads"):
        configure_threads(bad)  # type: ignore[arg-type]


def test_recipes_accept_auto_or_a_positive_count() -> None:
    raw = {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {"encoders": {"text": {"factory": "example.BagOfWords.v1"}}},
        "stages": [{"kind": "supervised", "encoders": ["text"]}],
    }
    assert validate(raw, "r").runtime.threads == "auto"
    assert validate({**raw, "runtime": {"threads": 3}}, "r").runtime.threads == 3
    with pytest.raises(ErckitError, match="threads"):
        validate({**raw, "runtime": {"threads": 0}}, "r")


PROBE = (
    "import sys; from erckit.cli.main import main; main(['plugins']); "
    "import os, torch; print(os.environ.get('OMP_WAIT_POLICY'))"
)


def _wait_policy_seen_by_torch(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_cli_makes_openmp_threads_wait_passively_before_torch_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _wait_policy_seen_by_torch(env) == "PASSIVE"


def test_a_wait_policy_the_user_chose_is_kept() -> None:
    assert _wait_policy_seen_by_torch({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
