"""The Inference API's overhead (demo/api.py): `POST /models/<task>/<name>` on the app against a bare FastAPI
echo plus the bare model.

    .venv/bin/python bench/serve.py --inference-api [--requests 200] [--tabs image text speech]

Starts `app.py`'s own `main()` (bench/serve.py --serve) and, in another process, a bare FastAPI app on
uvicorn whose `POST /models/{task}/{name}` reads the body and answers a fixed `[{"label", "score"}]`: the
floor of an HTTP call carrying the same bytes. Per tab, `--requests` sequential calls with one keep-alive
httpx client, app and echo interleaved one by one (load from other work hits both alike), the body as
`InferenceClient` sends it (the file's raw bytes with its content type; JSON for text); then the bare model,
`Predictor.predict` on the same bytes or text in this process with the app's thread count. ratio =
api p50 / (echo p50 + bare p50), goal <= 1.3. Prints a table; asserts nothing.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fastapi import FastAPI, Request   # at the top: FastAPI reads the echo's annotations from here
from shipped import IMAGE_INPUT, TEXT_INPUT, speech_input
from speech_latency import timed

CONTENT_TYPES = {"image": "image/png", "speech": "audio/wav"}


def echo_app() -> FastAPI:
    """The floor: FastAPI reading the body and answering a fixed list, nothing else."""
    app = FastAPI()

    @app.post("/models/{task}/{name}")
    async def echo(task: str, name: str, request: Request):
        await request.body()
        return [{"label": "echo", "score": 1.0}]

    return app


def serve_echo(port: int) -> None:
    import uvicorn

    uvicorn.run(echo_app(), host="127.0.0.1", port=port, log_level="warning")


def start_echo(port: int) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("serve.py")), "--fastapi-echo", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/models/x/y", content=b"")
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the FastAPI echo did not start within 60 s")


def body(tab: str) -> tuple[bytes, dict]:
    """What InferenceClient sends for the tab's sample input: (content, headers)."""
    if tab == "text":
        return json.dumps({"inputs": TEXT_INPUT}).encode(), {"content-type": "application/json"}
    path = IMAGE_INPUT if tab == "image" else speech_input()
    return path.read_bytes(), {"content-type": CONTENT_TYPES[tab]}


def latency(api_url: str, echo_url: str, tab: str, model: str, n: int) -> tuple[list[float], list[float]]:
    import httpx

    content, headers = body(tab)
    out = {api_url: [], echo_url: []}
    with httpx.Client(timeout=60) as client:
        for base in (api_url, echo_url) * 3:   # warm-up
            client.post(f"{base}models/{tab}/{model}", content=content, headers=headers).raise_for_status()
        for i in range(2 * n):
            base = api_url if i % 2 == 0 else echo_url
            t = time.perf_counter()
            client.post(f"{base}models/{tab}/{model}", content=content, headers=headers).raise_for_status()
            out[base].append((time.perf_counter() - t) * 1000)
    return out[api_url], out[echo_url]


def bare(tab: str, checkpoints: Path, model: str, n: int) -> list[float]:
    """Predictor.predict on what the API gives it: the file's bytes, or the text."""
    from demo.predictor import Predictor

    predictor = Predictor.load(checkpoints / tab / model, "cpu")
    content, _ = body(tab)
    raw = TEXT_INPUT if tab == "text" else content
    timed(lambda: predictor.predict(raw), 5)   # warm-up
    return timed(lambda: predictor.predict(raw), n)


def run(api_url: str, echo_url: str, tabs, checkpoints: Path, n: int) -> dict:
    from training.tasks import get_task

    print(f"{'tab':<8}{'api p50':>9}{'api p95':>9}{'echo p50':>9}{'bare p50':>9}{'ratio':>7}", flush=True)
    rows = {}
    for tab in tabs:
        model = get_task(tab).default_model
        api_ms, echo_ms = latency(api_url, echo_url, tab, model, n)
        bare_ms = bare(tab, checkpoints, model, n)
        r = {"api_p50": statistics.median(api_ms), "api_p95": sorted(api_ms)[int(0.95 * (len(api_ms) - 1))],
             "echo_p50": statistics.median(echo_ms), "bare_p50": statistics.median(bare_ms)}
        r["ratio"] = r["api_p50"] / (r["echo_p50"] + r["bare_p50"])
        rows[tab] = r
        print(f"{tab:<8}{r['api_p50']:>9.1f}{r['api_p95']:>9.1f}{r['echo_p50']:>9.1f}{r['bare_p50']:>9.1f}"
              f"{r['ratio']:>7.2f}", flush=True)
    return rows
