"""The server's limits, set on purpose (docs/limits.md): upload size, file routes, the queue, and the lanes
that keep batches from filling it."""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

import hostile_files as hf
from conftest import REPO, launch_app

ATTACKS = ["app.py", str(REPO / "app.py"), "README.md", "checkpoints/image/cifar10/config.json",
           "checkpoints/image/cifar10/model.safetensors", str(REPO / "checkpoints/text/emotion/tokenizer.json"),
           "/etc/passwd", "%2Fetc%2Fpasswd", "../../../../etc/passwd", "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
           "/tmp/../etc/passwd", "demo/../app.py", "tests/conftest.py", "/proc/self/environ", "/proc/self/cmdline",
           "file:///etc/passwd", "http://127.0.0.1:1/", "~/.bashrc", "/", "."]


def upload(base_url: str, name: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{base_url}gradio_api/upload", files={"files": (name, data)}, timeout=60)


def test_an_upload_over_the_limit_gets_413_and_the_app_keeps_serving(app_server, app_client):
    big = upload(app_server, "big.png", b"\x00" * (50 * 2**20 + 1))
    assert big.status_code == 413, big.text[:200]
    assert "maximum allowed size" in big.text
    small = upload(app_server, "small.png", b"\x00" * 1000)
    assert small.status_code == 200
    assert app_client.predict("i feel wonderful today", api_name="/classify_text")["label"] == "joy"


def get_as_is(base_url: str, path: str) -> tuple[int, str]:
    """GET with the path sent byte for byte (no client-side `..` resolution, as curl --path-as-is)."""
    url = httpx.URL(base_url)
    conn = http.client.HTTPConnection(url.host, url.port, timeout=30)
    try:
        conn.request("GET", f"/gradio_api/file={path}")
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.mark.parametrize("path", ATTACKS)
def test_file_route_refuses_paths_outside_uploads_and_examples(app_server, path):
    status, text = get_as_is(app_server, path)
    # Gradio 6.31 answers 403 "File not allowed: <path>" for every one of these, `..` paths included.
    assert status == 403, (path, status, text[:200])
    body = json.loads(text)   # the whole answer is the refusal: nothing of the file is in it
    assert list(body) == ["detail"] and body["detail"].startswith("File not allowed: "), text[:200]


def test_file_route_serves_the_callers_own_upload(app_server):
    data = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(data, format="PNG")
    r = upload(app_server, "mine.png", data.getvalue())
    path = r.json()[0]
    got = httpx.get(f"{app_server}gradio_api/file={path}", timeout=30)
    assert got.status_code == 200 and got.content == data.getvalue()


def test_a_full_queue_answers_with_a_clear_error(served_checkpoints, tmp_path):
    """With room for one waiting request, a burst of slow ones: the extra ones get HTTP 503 "Queue is full"
    at once, every accepted one completes, and the app serves normally afterwards."""
    big = io.BytesIO()
    Image.new("L", (10_000, 5_000), 90).save(big, format="PNG", compress_level=9)   # 50 MP: about a second each
    with launch_app(served_checkpoints, "--queue-size", "1", "--threads", "1", log_name="queue.log") as url:
        path = upload(url, "big.png", big.getvalue()).json()[0]
        body = json.dumps({"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, None]})
        go = threading.Barrier(10)

        def post(_):
            go.wait()
            return httpx.post(f"{url}gradio_api/call/classify_image", content=body,
                              headers={"Content-Type": "application/json"}, timeout=120)

        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(post, range(10)))
        full = [a for a in answers if a.status_code == 503]
        accepted = [a for a in answers if a.status_code == 200]
        assert len(full) + len(accepted) == 10, [a.status_code for a in answers]
        assert full, "no request was refused: the queue did not fill"
        assert all("Queue is full" in a.text for a in full), full[0].text
        assert len(accepted) >= 1
        for a in accepted:   # each accepted request completes with a prediction
            stream = httpx.get(f"{url}gradio_api/call/classify_image/{a.json()['event_id']}", timeout=120).text
            assert "event: complete" in stream and '"label"' in stream, stream[:300]
        r = httpx.post(f"{url}gradio_api/call/classify_text", json={"data": ["i feel wonderful today", None]},
                       timeout=30)
        assert r.status_code == 200
        stream = httpx.get(f"{url}gradio_api/call/classify_text/{r.json()['event_id']}", timeout=60).text
        assert '"joy"' in stream


def test_batches_never_fill_the_queue_that_single_predictions_wait_in(served_checkpoints, tmp_path):
    """With room for two waiting requests, six slow batches: one runs, two wait in the batch lane, three are
    told the server is busy, and single predictions sent meanwhile are all answered (before the lanes, the
    waiting batches filled the queue and single predictions got "Queue is full"). Batches sent in the same
    instant still pass through the queue for a moment on their way to their lane: QUEUE_SIZE has room."""
    from gradio_client import Client, handle_file

    frog = (REPO / "demo" / "examples" / "image" / "frog-1.png").read_bytes()
    photos = tmp_path / "photos.zip"
    photos.write_bytes(hf.zip_of({f"{k}.png": frog for k in range(300)}))
    with launch_app(served_checkpoints, "--queue-size", "2", "--threads", "1", log_name="lanes.log") as url:
        clients = [Client(url, verbose=False) for _ in range(7)]
        batches = []
        for client in clients[:6]:     # one after another: each is admitted (or refused) by its lane at once
            batches.append(client.submit([handle_file(str(photos))], None, api_name="/classify_image_batch"))
            time.sleep(0.5)
        singles = [clients[6].predict("i feel wonderful today", api_name="/classify_text")["label"] for _ in range(5)]
        outcomes = []
        for job in batches:
            try:
                outcomes.append(len(job.result(timeout=600)[0]["data"]))
            except Exception as e:   # noqa: BLE001 (the refusal is the answer looked for)
                outcomes.append(str(e))
    assert singles == ["joy"] * 5
    assert sorted(map(str, outcomes)).count("300") == 3, outcomes
    assert sum("The server is busy: 3 batches are running or waiting" in str(o) for o in outcomes) == 3, outcomes
