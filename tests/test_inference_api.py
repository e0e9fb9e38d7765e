"""The Inference API (demo/api.py): `POST /models/<task>/<name>` on the app's own server, called with
`huggingface_hub.InferenceClient` itself, agreeing with the Gradio JSON endpoints; its errors, limits and
OpenAPI schema."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import threading
import urllib.error
import urllib.request
from urllib.parse import urlparse

import pytest
from conftest import REPO

EXAMPLES = REPO / "demo" / "examples"
IMAGE, CLIP = EXAMPLES / "image" / "cat-1.png", EXAMPLES / "speech" / "command-yes-1.wav"


@pytest.fixture
def client_for(app_server, monkeypatch):
    """InferenceClient(model=<the app's URL for a model>). InferenceClient refuses every URL while
    HF_HUB_OFFLINE=1, so it is lifted for these clients alone; the Hub's own address points at a closed
    port meanwhile, so that nothing but the local app can be reached."""
    from huggingface_hub import InferenceClient, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    return lambda path: InferenceClient(model=f"{app_server}models/{path}")   # a URL: the client posts to it as it is


def as_dict(elements) -> dict[str, float]:
    return {e.label: e.score for e in elements}


def test_image_classification_through_inference_client(client_for, app_client):
    from gradio_client import handle_file

    answer = client_for("image/cifar10").image_classification(str(IMAGE))
    expected = app_client.predict(handle_file(str(IMAGE)), "cifar10", api_name="/classify_image_json")
    assert [e.label for e in answer] == list(expected["confidences"])          # best first
    assert as_dict(answer) == pytest.approx(expected["confidences"], abs=1e-6)
    top = client_for("image/cifar10").image_classification(str(IMAGE), top_k=3)  # sent as base64 JSON
    assert [e.label for e in top] == list(expected["confidences"])[:3]


def test_text_classification_through_inference_client(client_for, app_client):
    answer = client_for("text/emotion").text_classification("i feel wonderful today")
    expected = app_client.predict("i feel wonderful today", "emotion", api_name="/classify_text_json")
    assert [e.label for e in answer] == list(expected["confidences"]) and answer[0].label == expected["label"]
    assert as_dict(answer) == pytest.approx(expected["confidences"], abs=1e-6)
    assert len(client_for("text/emotion").text_classification("i feel wonderful today", top_k=2)) == 2


@pytest.mark.parametrize("model", ["speech_commands", "fsdd"])
def test_audio_classification_through_inference_client(client_for, app_client, model):
    from gradio_client import handle_file

    answer = client_for(f"speech/{model}").audio_classification(str(CLIP))
    expected = app_client.predict(handle_file(str(CLIP)), model, api_name="/recognize_speech_json")
    assert [e.label for e in answer] == list(expected["confidences"])
    assert as_dict(answer) == pytest.approx(expected["confidences"], abs=1e-6)


def test_an_unknown_model_is_a_client_error(client_for):
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError, match="404") as refused:
        client_for("speech/nope").audio_classification(str(CLIP))
    assert "No speech model named 'nope'. Available: " in str(refused.value)


def post(url: str, body: bytes, content_type: str | None = "application/json") -> tuple[int, object]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if content_type else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


ERRORS = {   # name: (path, body, content type, status, words of the message)
    "not an image": ("image/cifar10", b"plainly not a picture", "image/png", 400, "not an image that can be read"),
    "bad base64": ("image/cifar10", b'{"inputs": "***"}', None, 400, "not base64"),
    "not JSON": ("text/emotion", b"{inputs: 1", None, 400, "not valid JSON"),
    "no inputs": ("text/emotion", b'{"text": "hi"}', None, 400, 'with "inputs"'),
    "empty text": ("text/emotion", b'{"inputs": ""}', None, 400, "The text is empty"),
    "two texts": ("text/emotion", b'{"inputs": ["a", "b"]}', None, 400, "one text per request"),
    "bad top_k": ("text/emotion", b'{"inputs": "hi", "parameters": {"top_k": 0}}', None, 422, "top_k 0"),
    "unknown parameter": ("text/emotion", b'{"inputs": "hi", "parameters": {"temperature": 2}}', None, 422,
                          "Unknown parameters ['temperature']"),
    "sigmoid": ("text/emotion", b'{"inputs": "hi", "parameters": {"function_to_apply": "sigmoid"}}', None, 422,
                'only "softmax"'),
    "silent clip bytes": ("speech/speech_commands", b"RIFF....WAVE", "audio/wav", 400, "audio"),
    "unknown model": ("image/nope", b"x", "image/png", 404, "No image model named 'nope'"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_are_json_with_a_4xx_status_and_no_server_path(app_server, served_checkpoints, case):
    path, body, content_type, status, words = ERRORS[case]
    code, answer = post(f"{app_server}models/{path}", body, content_type or "application/json")
    assert code == status and set(answer) == {"error"}, answer
    assert words in answer["error"], answer
    assert str(served_checkpoints) not in answer["error"] and str(REPO) not in answer["error"]
    assert "Traceback" not in answer["error"]


def test_text_may_come_as_plain_text_and_files_as_base64(app_server):
    code, answer = post(f"{app_server}models/text/emotion", "i feel wonderful today".encode(), "text/plain; charset=utf-8")
    assert code == 200 and answer[0][0]["label"] == "joy"
    encoded = base64.b64encode(IMAGE.read_bytes()).decode()
    code, by_json = post(f"{app_server}models/image/cifar10", json.dumps({"inputs": encoded}).encode())
    assert code == 200 and by_json == post(f"{app_server}models/image/cifar10", IMAGE.read_bytes(), "image/png")[1]


def test_an_upload_over_the_limit_is_refused_before_it_is_read(app_server):
    from app import MAX_FILE_SIZE

    assert MAX_FILE_SIZE == "50mb"
    where = urlparse(app_server)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    connection.putrequest("POST", "/models/image/cifar10")
    connection.putheader("Content-Type", "image/png")
    connection.putheader("Content-Length", str(50 * 2**20 + 1))
    connection.endheaders()
    connection.send(b"\x89PNG")                           # the rest never comes: the size alone refuses it
    answer = connection.getresponse()
    assert answer.status == 413 and "over 50 MB" in json.loads(answer.read())["error"]
    connection.close()


def test_the_routes_are_in_the_apps_openapi_schema(app_server):
    with urllib.request.urlopen(f"{app_server}openapi.json", timeout=30) as answer:
        schema = json.loads(answer.read())
    for task in ("image", "text", "speech"):
        operation = schema["paths"][f"/models/{task}/{{name}}"]["post"]
        assert "application/json" in operation["requestBody"]["content"]
        assert {"200", "404", "413", "429"} <= set(operation["responses"])


def test_the_gate_lets_some_run_some_wait_and_refuses_the_rest():
    from demo.api import ApiError, Gate

    async def scenario():
        gate, inside, peak, refused = Gate(running=2, waiting=1), 0, 0, []

        async def call(i):
            nonlocal inside, peak
            try:
                async with gate:
                    inside += 1
                    peak = max(peak, inside)
                    await asyncio.sleep(0.05)
                    inside -= 1
            except ApiError as e:
                refused.append((i, e.status))

        await asyncio.gather(*(call(i) for i in range(5)))
        await call(5)                                     # all have left: the gate is open again
        return peak, refused, gate.inside

    found = []   # in a thread of its own: an earlier test's client may have left this one's event loop running
    thread = threading.Thread(target=lambda: found.append(asyncio.run(scenario())))
    thread.start()
    thread.join(timeout=60)
    (peak, refused, left), = found
    assert peak == 2 and [status for _, status in refused] == [429, 429] and left == 0
