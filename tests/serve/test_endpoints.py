"""The server's answers are ``erckit predict``'s: POST /v1/predict, the WebSocket conversation, /v1/model, /metrics."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from live_server import running
from erckit.cli.main import main
from tiny_models import LABELS

DIALOGUES = [
    {"id": "d1", "utterances": [{"speaker": "Ross", "text": "we were on a break", "label": "anger"},
                                {"speaker": "Rachel", "text": "no we were not", "label": "sarcasm"},
                                {"speaker": "Ross", "text": "okay fine"},
                                {"speaker": "Joey", "text": "how you doin", "id": "u4"}]},
    {"id": 7, "utterances": [{"speaker": "Gunther", "text": "coffee?"}]},
    {"id": "d3", "utterances": [{"speaker": "A", "text": "what a lovely day"}, {"speaker": "B", "text": "is it though"},
                                {"speaker": "A", "text": "yes it is a lovely lovely day"}]},
]


@pytest.fixture(scope="module")
def offline(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What ``erckit predict`` writes for DIALOGUES, one object per dialogue."""
    folder = tmp_path_factory.mktemp("offline")
    source = folder / "in.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in DIALOGUES), encoding="utf-8")
    assert main(["predict", str(model_dir), str(source), "-o", str(folder / "out.jsonl")]) == 0
    return [json.loads(line) for line in (folder / "out.jsonl").read_text(encoding="utf-8").splitlines()]


def assert_same_predictions(served: list[dict], offline: list[dict]) -> None:
    assert len(served) == len(offline)
    for ours, theirs in zip(served, offline):
        assert ours["id"] == theirs["id"]
        assert len(ours["utterances"]) == len(theirs["utterances"])
        for a, b in zip(ours["utterances"], theirs["utterances"]):
            assert {k: v for k, v in a.items() if k != "probabilities"} == {k: v for k, v in b.items() if k != "probabilities"}
            assert list(a["probabilities"]) == LABELS
            assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in LABELS) <= 1e-6


def test_predict_answers_what_erckit_predict_writes(server: str, offline: list[dict]) -> None:
    as_list = httpx.post(f"{server}/v1/predict", json=DIALOGUES, timeout=30)
    assert as_list.status_code == 200, as_list.text
    assert_same_predictions(as_list.json()["dialogues"], offline)
    lines = "".join(json.dumps(d) + "\n" for d in DIALOGUES)
    as_jsonl = httpx.post(f"{server}/v1/predict", content=lines, headers={"content-type": "application/x-ndjson"}, timeout=30)
    assert_same_predictions(as_jsonl.json()["dialogues"], offline)
    one = httpx.post(f"{server}/v1/predict", json=DIALOGUES[2], timeout=30)
    assert_same_predictions(one.json()["dialogues"], offline[2:])
    # Context matters for this model, so the comparison above would catch a context rule that differs.
    first, third = offline[2]["utterances"][0], offline[2]["utterances"][2]
    assert first["probabilities"] != third["probabilities"]


def conversation_answers(server: str, dialogues: list[dict]) -> list[dict]:
    """Every dialogue streamed over one connection, turn by turn, dialogues interleaved."""
    answers = []
    with connect(server.replace("http", "ws") + "/v1/conversations") as socket:
        for position in range(max(len(d["utterances"]) for d in dialogues)):
            for d in dialogues:
                if position < len(d["utterances"]):
                    socket.send(json.dumps({"dialogue": d["id"], **d["utterances"][position]}))
                    answers.append(json.loads(socket.recv(timeout=30)))
    return answers


def test_a_conversation_gets_each_utterance_as_predict_does_for_the_whole_dialogue(server: str, offline: list[dict]) -> None:
    expected = {(str(d["id"]), i): u for d in offline for i, u in enumerate(d["utterances"])}
    answers = conversation_answers(server, DIALOGUES)
    assert len(answers) == len(expected)
    for answer in answers:
        wanted = expected[(answer["dialogue"], answer["position"])]
        assert (answer["speaker"], answer["text"], answer["prediction"]) == (wanted["speaker"], wanted["text"], wanted["prediction"])
        assert max(abs(answer["probabilities"][k] - wanted["probabilities"][k]) for k in LABELS) <= 1e-6
        assert answer["modalities"] == ["text"] and answer["missing"] == []


def test_a_conversation_without_dialogue_ids_is_one_dialogue(server: str, offline: list[dict]) -> None:
    with connect(server.replace("http", "ws") + "/v1/conversations") as socket:
        for turn, wanted in zip(DIALOGUES[2]["utterances"], offline[2]["utterances"]):
            socket.send(json.dumps(turn))
            answer = json.loads(socket.recv(timeout=30))
            assert answer["dialogue"] == "conversation"
            assert answer["probabilities"] == pytest.approx(wanted["probabilities"], abs=1e-6)


def test_each_connection_keeps_its_own_history(server: str) -> None:
    """Two connections using the same dialogue id do not see each other's turns."""
    url = server.replace("http", "ws") + "/v1/conversations"
    with connect(url) as a, connect(url) as b:
        a.send(json.dumps({"speaker": "A", "text": "lovely lovely lovely"}))
        a.recv(timeout=30)
        b.send(json.dumps({"speaker": "B", "text": "is it though"}))
        after_other = json.loads(b.recv(timeout=30))
    with connect(url) as fresh:
        fresh.send(json.dumps({"speaker": "B", "text": "is it though"}))
        alone = json.loads(fresh.recv(timeout=30))
    assert after_other["position"] == 0
    assert after_other["probabilities"] == alone["probabilities"]


def test_model_health_and_page(server: str, model_dir: Path) -> None:
    info = httpx.get(f"{server}/v1/model").json()
    assert info["labels"] == LABELS
    assert info["modalities"] == ["text"] and info["media"] == []
    assert info["encoders"] == {"text": "example.BagOfWords.v1"}
    assert info["components"]["example.BagOfWords.v1"].startswith("erckit-example")
    assert info["max_context"] == 2
    assert info["batching"] == {"max_batch": 32, "max_wait_ms": 10.0, "padding_slack": 1.15}
    from erckit import __version__

    assert info["erckit_version"] == __version__
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    page = httpx.get(f"{server}/")
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # Offline: the page loads nothing from anywhere (no src=/href= to other sites, no imports).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.text)
    assert httpx.get(f"{server}/nowhere").status_code == 404
    assert httpx.get(f"{server}/v1/predict").json()["status"] == 405


def test_concurrent_requests_share_forward_passes(model_dir: Path) -> None:
    with running(model_dir, max_batch=64, max_wait_ms=300) as url:
        results: list[dict] = []

        def ask(dialogue: dict) -> None:
            results.append(httpx.post(f"{url}/v1/predict", json=dialogue, timeout=30).json())

        threads = [threading.Thread(target=ask, args=(d,)) for d in DIALOGUES * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        metrics = httpx.get(f"{url}/metrics").text
    assert all("dialogues" in r for r in results) and len(results) == 9
    batches = int(re.search(r"^erckit_batches_total (\d+)$", metrics, re.M).group(1))
    assert batches < 9  # 9 requests arriving within 300 ms: fewer forward passes than requests
    assert f"erckit_batch_size_count {batches}" in metrics
    assert "erckit_utterances_total 24" in metrics


def test_live_conversations_that_are_all_waiting_do_not_wait_out_max_wait(model_dir: Path) -> None:
    import time

    with running(model_dir, max_batch=32, max_wait_ms=4000) as url:
        address = url.replace("http", "ws") + "/v1/conversations"
        with connect(address) as first, connect(address) as second:
            began = time.perf_counter()
            first.send(json.dumps({"speaker": "A", "text": "hi there"}))
            second.send(json.dumps({"speaker": "B", "text": "so good to see you"}))
            answers = [json.loads(first.recv(timeout=30)), json.loads(second.recv(timeout=30))]
            seconds = time.perf_counter() - began
        metrics = httpx.get(f"{url}/metrics").text
    assert [a["speaker"] for a in answers] == ["A", "B"] and all("prediction" in a for a in answers)
    assert seconds < 3  # both open conversations were queued: nobody else could join the batch
    assert "erckit_batches_total 1" in metrics.splitlines()  # ... and they shared it
    assert "erckit_batches_closed_early_total 1" in metrics.splitlines()


def test_batching_off_runs_one_request_per_pass_with_the_same_numbers(model_dir: Path, offline: list[dict]) -> None:
    with running(model_dir, max_batch=1, max_wait_ms=0) as url:
        answer = httpx.post(f"{url}/v1/predict", json=DIALOGUES[1], timeout=30).json()
        metrics = httpx.get(f"{url}/metrics").text
    assert_same_predictions(answer["dialogues"], offline[1:2])
    assert "erckit_batches_total 1" in metrics


def test_metrics_count_requests_batches_and_latency(model_dir: Path) -> None:
    with running(model_dir) as url:
        httpx.post(f"{url}/v1/predict", json=DIALOGUES[0], timeout=30)
        httpx.post(f"{url}/v1/predict", content=b"{", timeout=30)
        with connect(url.replace("http", "ws") + "/v1/conversations") as socket:
            socket.send(json.dumps({"speaker": "A", "text": "hi"}))
            socket.recv(timeout=30)
        page = httpx.get(f"{url}/metrics")
    assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = page.text
    for line in (
        'erckit_requests_total{route="/v1/predict",status="200"} 1',
        'erckit_requests_total{route="/v1/predict",status="400"} 1',
        'erckit_requests_total{route="/v1/conversations",status="200"} 1',
        "erckit_utterances_total 5",
        "erckit_batches_total 2",
        'erckit_batch_size_bucket{le="2"} 1',  # the conversation's one utterance
        'erckit_batch_size_bucket{le="4"} 2',  # and the 4-utterance dialogue
        'erckit_batch_size_bucket{le="+Inf"} 2',
        "erckit_batch_size_sum 5",
        'erckit_request_latency_seconds_count{route="/v1/predict"} 2',
    ):
        assert line in text.splitlines(), line
    assert "# TYPE erckit_request_latency_seconds histogram" in text
