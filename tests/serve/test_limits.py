"""Hostile or broken requests get a 4xx JSON answer, and the server goes on serving; API key; CORS; media."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from live_server import running, serving
from erckit.cli.main import main
from erckit.serve.inputs import Limits
from tiny_models import multimodal_recipe, save_model, write_wav

GOOD = {"id": "g", "utterances": [{"speaker": "A", "text": "hello there"}]}
LIMITS = Limits(max_body_bytes=4000, max_utterances=5, max_text_chars=100, max_conversations=2)


@pytest.fixture(scope="module")
def limited(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running(model_dir, limits=LIMITS, media_root=tmp_path_factory.mktemp("media")) as url:
        yield url


def turns(n: int, text: str = "hi") -> dict:
    return {"id": "d", "utterances": [{"speaker": "A", "text": text}] * n}


HOSTILE = [
    pytest.param(b"x" * 5000, 413, "at most 4000", id="body too large"),
    pytest.param(json.dumps(turns(6)).encode(), 413, "6 utterances in one request; at most 5", id="too many utterances"),
    pytest.param(json.dumps([turns(3), {**turns(3), "id": "e"}]).encode(), 413, "6 utterances", id="too many across dialogues"),
    pytest.param(json.dumps(turns(1, "a" * 101)).encode(), 413, "'text' has 101 characters", id="text too long"),
    pytest.param(json.dumps({"id": "d", "utterances": [{"speaker": "s" * 101, "text": "x"}]}).encode(), 413, "'speaker'",
                 id="speaker too long"),
    pytest.param(b'{"utterances": [', 400, "malformed JSON", id="malformed JSON"),
    pytest.param(b"\xff\xfe", 400, "not UTF-8", id="not UTF-8"),
    pytest.param(json.dumps({"id": "d", "utterances": [{"speaker": "A", "text": "x", "emotion": "joy"}]}).encode(), 422,
                 "unknown key(s) emotion", id="unknown utterance key"),
    pytest.param(json.dumps({"id": "d", "utterances": [{"speaker": 3, "text": "x"}]}).encode(), 422,
                 "'speaker' must be a string", id="speaker not a string"),
    pytest.param(json.dumps({"id": "d", "utterances": [{"speaker": "A", "text": "x", "label": 1}]}).encode(), 422,
                 "'label' must be a string", id="label not a string"),
    pytest.param(json.dumps({"id": "d", "utterances": []}).encode(), 422, "empty dialogue", id="empty dialogue"),
    pytest.param(json.dumps([GOOD, GOOD]).encode(), 422, "duplicate dialogue id", id="duplicate ids"),
    pytest.param(json.dumps("just a string").encode(), 422, "expected a JSON object", id="not an object"),
    pytest.param(json.dumps([]).encode(), 422, "no dialogue", id="no dialogue"),
    pytest.param(json.dumps({"id": "d", "utterances": [{"speaker": "A", "text": "x", "audio": "a.wav"}]}).encode(), 422,
                 "this model reads no audio", id="a modality the model lacks"),
]


@pytest.mark.parametrize(("body", "status", "message"), HOSTILE)
def test_a_hostile_request_gets_a_4xx_and_the_next_one_is_served(limited: str, body: bytes, status: int, message: str) -> None:
    answer = httpx.post(f"{limited}/v1/predict", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.json()["status"] == status
    assert message in answer.json()["error"]
    assert httpx.post(f"{limited}/v1/predict", json=GOOD, timeout=30).status_code == 200


def test_a_body_larger_than_declared_is_cut_off(limited: str) -> None:
    def chunks() -> Iterator[bytes]:  # no content-length: the limit counts what arrives
        for _ in range(10):
            yield b" " * 1000

    answer = httpx.post(f"{limited}/v1/predict", content=chunks(), timeout=30)
    assert answer.status_code == 413
    assert httpx.post(f"{limited}/v1/predict", json=GOOD, timeout=30).status_code == 200


def ws(url: str, path: str = "/v1/conversations", **options):
    return connect(url.replace("http", "ws") + path, **options)


def test_hostile_websocket_messages_get_an_error_message_and_the_conversation_goes_on(limited: str) -> None:
    with ws(limited) as socket:
        for message, status, text in (
            ("{not json", 400, "malformed JSON"),
            (json.dumps({"speaker": "A"}), 422, "'text' must be a string"),
            (json.dumps({"speaker": "A", "text": "x", "mood": "joy"}), 422, "unknown key(s) mood"),
            (json.dumps({"speaker": "A", "text": "a" * 101}), 413, "at most 100"),
            (json.dumps({"speaker": "A", "text": "x", "video": "clip.mp4"}), 422, "reads no video"),
            (json.dumps(["a list"]), 422, "expected a JSON object"),
        ):
            socket.send(message)
            answer = json.loads(socket.recv(timeout=30))
            assert answer["status"] == status and text in answer["error"], answer
        socket.send(json.dumps({"speaker": "A", "text": "hello"}))
        answer = json.loads(socket.recv(timeout=30))
        assert answer["position"] == 0  # the refused messages did not enter the conversation
        for dialogue in ("one", "two"):
            socket.send(json.dumps({"dialogue": dialogue, "speaker": "A", "text": "x"}))
            socket.recv(timeout=30)
        socket.send(json.dumps({"dialogue": "three", "speaker": "A", "text": "x"}))
        assert "at most 2 dialogues" in json.loads(socket.recv(timeout=30))["error"]


def test_a_websocket_message_over_the_size_limit_closes_only_that_connection(limited: str) -> None:
    with ws(limited) as socket:
        socket.send(json.dumps({"speaker": "A", "text": "x" * 5000}))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=30)
        assert closed.value.rcvd.code == 1009
    with ws(limited) as socket:
        socket.send(json.dumps({"speaker": "A", "text": "fine"}))
        assert json.loads(socket.recv(timeout=30))["prediction"]


# ----------------------------------------------------------------- API key


def test_the_api_key_guards_every_route_but_healthz(model_dir: Path) -> None:
    with running(model_dir, api_key="s3cret") as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        for method, path in (("GET", "/"), ("GET", "/v1/model"), ("GET", "/metrics"), ("POST", "/v1/predict")):
            refused = httpx.request(method, f"{url}{path}", json=GOOD)
            assert refused.status_code == 401 and "API key" in refused.json()["error"], path
            wrong = httpx.request(method, f"{url}{path}", json=GOOD, headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401
        for headers in ({"authorization": "Bearer s3cret"}, {"x-api-key": "s3cret"}):
            assert httpx.post(f"{url}/v1/predict", json=GOOD, headers=headers).status_code == 200
        assert httpx.get(f"{url}/?api_key=s3cret").status_code == 200  # the page, opened in a browser
        with pytest.raises(InvalidStatus):
            with ws(url):
                pass
        with pytest.raises(InvalidStatus):
            with ws(url, "/v1/conversations?api_key=wrong"):
                pass
        with ws(url, additional_headers={"x-api-key": "s3cret"}) as socket:
            socket.send(json.dumps({"speaker": "A", "text": "hi"}))
            assert json.loads(socket.recv(timeout=30))["prediction"]
        with ws(url, "/v1/conversations?api_key=s3cret") as socket:
            socket.send(json.dumps({"speaker": "A", "text": "hi"}))
            assert json.loads(socket.recv(timeout=30))["prediction"]


# -------------------------------------------------------------------- CORS


def test_no_cors_unless_an_origin_is_given(server: str, model_dir: Path) -> None:
    origin = {"origin": "https://dashboard.example"}
    assert "access-control-allow-origin" not in httpx.get(f"{server}/v1/model", headers=origin).headers
    preflight = {**origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    assert "access-control-allow-origin" not in httpx.options(f"{server}/v1/predict", headers=preflight).headers
    with pytest.raises(InvalidStatus):  # a page of another site may not open a conversation either
        with ws(server, origin="https://evil.example"):
            pass
    with running(model_dir, cors_origins=("https://dashboard.example",), api_key="k") as url:
        allowed = httpx.options(f"{url}/v1/predict", headers=preflight)  # preflights carry no key
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://dashboard.example"
        answer = httpx.post(f"{url}/v1/predict", json=GOOD, headers={**origin, "x-api-key": "k"})
        assert answer.headers["access-control-allow-origin"] == "https://dashboard.example"
        other = httpx.get(f"{url}/v1/model", headers={"origin": "https://evil.example", "x-api-key": "k"})
        assert "access-control-allow-origin" not in other.headers
        with ws(url, "/v1/conversations?api_key=k", origin="https://dashboard.example") as socket:
            socket.send(json.dumps({"speaker": "A", "text": "hi"}))
            assert json.loads(socket.recv(timeout=30))["prediction"]


# -------------------------------------------------------------------- media


@pytest.fixture(scope="module")
def multimodal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("mm") / "m", multimodal_recipe())


def test_media_inline_or_under_the_media_root_and_nowhere_else(multimodal_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "media"
    root.mkdir()
    write_wav(root / "a.wav", tone=330.0)
    (tmp_path / "secret.wav").write_bytes((root / "a.wav").read_bytes())
    inline = "data:audio/wav;base64," + base64.b64encode((root / "a.wav").read_bytes()).decode()
    dialogue = {"id": "m", "utterances": [{"speaker": "A", "text": "hello there", "audio": "a.wav"},
                                          {"speaker": "B", "text": "no audio"},
                                          {"speaker": "A", "text": "gone", "audio": "gone.wav"}]}
    source = root / "in.jsonl"
    source.write_text(json.dumps(dialogue) + "\n", encoding="utf-8")
    assert main(["predict", str(multimodal_dir), str(source), "-o", str(tmp_path / "out.jsonl")]) == 0
    offline = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))["utterances"]
    assert offline[0]["modalities"] == ["text", "audio"] and offline[1]["missing"] == ["audio"]

    with serving(multimodal_dir, media_root=root) as (url, app):
        scratch = app.state.service.scratch
        served = httpx.post(f"{url}/v1/predict", json=dialogue, timeout=30).json()["dialogues"][0]["utterances"]
        by_value = {**dialogue, "utterances": [{**dialogue["utterances"][0], "audio": inline}, *dialogue["utterances"][1:]]}
        inlined = httpx.post(f"{url}/v1/predict", json=by_value, timeout=30).json()["dialogues"][0]["utterances"]
        for path in ("../secret.wav", str(tmp_path / "secret.wav")):
            outside = httpx.post(f"{url}/v1/predict", json={"utterances": [{"speaker": "A", "text": "x", "audio": path}]})
            assert outside.status_code == 403 and "outside the media root" in outside.json()["error"]
        bad = httpx.post(f"{url}/v1/predict", json={"utterances": [{"speaker": "A", "text": "x", "audio": "data:audio/wav;base64,@@"}]})
        assert bad.status_code == 422 and "base64" in bad.json()["error"]
        with ws(url) as socket:
            socket.send(json.dumps({"speaker": "A", "text": "hello there", "audio": inline}))
            live = json.loads(socket.recv(timeout=30))
        assert list(scratch.iterdir()) == []  # the inline media files lived only as long as their request
    for ours, theirs in zip(served, offline):
        assert ours["modalities"] == theirs["modalities"] and ours["missing"] == theirs["missing"]
        assert ours["probabilities"] == pytest.approx(theirs["probabilities"], abs=1e-6)
    assert inlined[0]["probabilities"] == pytest.approx(offline[0]["probabilities"], abs=1e-6)
    assert inlined[0]["audio"] == inline  # the answer echoes the input as erckit predict does
    assert live["modalities"] == ["text", "audio"]
    assert live["probabilities"] == pytest.approx(offline[0]["probabilities"], abs=1e-6)
    assert not scratch.exists()  # removed at shutdown


def test_without_a_media_root_paths_are_refused(multimodal_dir: Path) -> None:
    with running(multimodal_dir) as url:
        answer = httpx.post(f"{url}/v1/predict", json={"utterances": [{"speaker": "A", "text": "x", "audio": "a.wav"}]})
        assert answer.status_code == 403 and "--media-root" in answer.json()["error"]
        with ws(url) as socket:
            socket.send(json.dumps({"speaker": "A", "text": "x", "audio": "a.wav"}))
            assert json.loads(socket.recv(timeout=30))["status"] == 403


def test_the_media_a_model_reads_whatever_its_spec() -> None:
    from erckit.data.types import AudioSpec, DecoderSpec, VideoSpec
    from erckit.serve.app import model_media

    class Encoder:
        def __init__(self, media):
            self.media = media

    class Predictor:
        encoders = {"text": Encoder(None), "audio": Encoder(DecoderSpec("audio", "erckit_telme.authors_media:read_audio_authors")),
                    "visual": Encoder(VideoSpec(num_frames=4, size=32))}

    assert model_media(Predictor()) == {"audio", "video"}
    Predictor.encoders = {"audio": Encoder(AudioSpec())}
    assert model_media(Predictor()) == {"audio"}
