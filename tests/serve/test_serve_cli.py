"""``erckit serve``: the command itself (a subprocess), graceful SIGTERM, the missing extra, the bind warning."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from erckit.cli.main import main


def start(model_dir: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """``erckit serve`` in a subprocess on a free port; its URL, read from uvicorn's start-up line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "erckit", "serve", str(model_dir), "--port", "0", *options],
        stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"running on (http://127\.0\.0\.1:\d+)", line, re.IGNORECASE)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
            return process, found.group(1)
    process.kill()
    raise AssertionError("the server did not start:\n" + "".join(lines))


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight_then_exits(model_dir: Path) -> None:
    # A long batching wait keeps the request in the batcher while SIGTERM arrives.
    process, url = start(model_dir, "--max-wait-ms", "1500")
    try:
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        answers: list[httpx.Response] = []
        dialogue = {"id": "late", "utterances": [{"speaker": "A", "text": "still there?"}]}
        asking = threading.Thread(target=lambda: answers.append(httpx.post(f"{url}/v1/predict", json=dialogue, timeout=30)))
        asking.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        asking.join(30)
        # After its graceful shutdown uvicorn re-raises the signal: the exit status says "terminated".
        assert process.wait(30) == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
    assert len(answers) == 1 and answers[0].status_code == 200
    assert answers[0].json()["dialogues"][0]["utterances"][0]["prediction"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=5)


@pytest.mark.slow
def test_the_command_serves_with_its_options(model_dir: Path) -> None:
    process, url = start(model_dir, "--max-batch", "4", "--max-wait-ms", "3", "--padding-slack", "0", "--max-utterances", "2",
                         "--api-key", "k")
    try:
        headers = {"x-api-key": "k"}
        assert httpx.get(f"{url}/v1/model", timeout=10).status_code == 401
        info = httpx.get(f"{url}/v1/model", headers=headers, timeout=10).json()
        assert info["batching"] == {"max_batch": 4, "max_wait_ms": 3.0, "padding_slack": None}
        assert info["limits"]["max_utterances"] == 2
        three = {"utterances": [{"speaker": "A", "text": "x"}] * 3}
        assert httpx.post(f"{url}/v1/predict", json=three, headers=headers, timeout=10).status_code == 413
    finally:
        process.terminate()
        process.wait(30)


def test_a_missing_extra_is_one_line_naming_the_pip_command(model_dir: Path, monkeypatch, capsys) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve", str(model_dir)]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "uvicorn" in error and 'pip install "erckit[serve]"' in error


def test_binding_beyond_loopback_without_a_key_warns(model_dir: Path, monkeypatch, capsys) -> None:
    import uvicorn

    started: list[tuple[str, int]] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: started.append((self.config.host, self.config.port)))
    monkeypatch.delenv("ERCKIT_API_KEY", raising=False)
    assert main(["serve", str(model_dir), "--host", "0.0.0.0", "--port", "8123"]) == 0
    assert "without an API key" in capsys.readouterr().err
    assert started == [("0.0.0.0", 8123)]
    monkeypatch.setenv("ERCKIT_API_KEY", "from-env")
    assert main(["serve", str(model_dir), "--host", "0.0.0.0"]) == 0
    assert "without an API key" not in capsys.readouterr().err
    assert main(["serve", str(model_dir)]) == 0  # loopback (the default) needs no key
    assert "without an API key" not in capsys.readouterr().err


def test_bad_options(model_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["serve", str(tmp_path / "nothing")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", str(model_dir), "--media-root", str(tmp_path / "nowhere")]) == 1
    assert "not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["serve", str(model_dir), "--max-batch", "0"])
    assert exit_.value.code == 2
    assert main(["serve", str(model_dir), "--max-wait-ms", "-1"]) == 2
    assert "--max-wait-ms" in capsys.readouterr().err
