"""Load test of the launched demo: `python bench/load.py [--clients 16] [--requests 500] [--url URL]`, or
its soak: `python bench/load.py --soak 180 [--clients 4]`.

Launches `app.py` on a free port (or drives `--url`), then `--clients` threads, each with its own
gradio_client, send `--requests` requests in all, mixed evenly across the three tabs, using the shipped
examples in demo/examples/ (images, sentences, clips). Reports errors (goal: 0), wrong labels
against the examples' known answers, p50/p95/p99 latency per tab, throughput, and the server's resident
memory (RSS, from /proc) at the start, after warm-up, in the middle and at the end (goal: no growth after
warm-up beyond 10%).

The soak (bench/soak.py) runs the app as a public Space runs it (SPACE_ID set, Teach on) for `--soak`
seconds: the same ordinary traffic beside visitors who send nothing but hostile uploads (bench/hostile.py's
cases) and Teach projects (that train, fail, or take a name already taken), then reports errors of each
kind, latency, the server's peak memory (VmHWM) and the disk it left behind, once its sessions' keep time
has passed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "demo" / "examples" / "image"
SPEECH = REPO / "demo" / "examples" / "speech"
TEXT_EXAMPLES = REPO / "demo" / "examples" / "text" / "emotion_validation.jsonl"


def load_texts() -> dict[str, str]:
    """The Text tab's examples, {text: label} (demo/examples/text/, real dair-ai/emotion validation rows)."""
    rows = [json.loads(line) for line in TEXT_EXAMPLES.read_text().splitlines() if line.strip()]
    return {r["text"]: r["label"] for r in rows}


# Speech examples: (model, expected label).
CLIPS = {"command-yes-1.wav": ("speech_commands", "yes"), "command-stop-1.wav": ("speech_commands", "stop"),
         "command-go-1.wav": ("speech_commands", "go"), "command-left-2.wav": ("speech_commands", "left"),
         "digit-3-1.wav": ("fsdd", "3"), "digit-7-1.wav": ("fsdd", "7")}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(checkpoints: str, log, *extra: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`python app.py` on a free port serving `checkpoints` (with `extra` flags and `env` added to the
    environment); returns the process and its URL once it answers."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), "--checkpoints", checkpoints,
                             *extra], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with code {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the app did not answer within 180 s")


def workload(n: int, images=None, texts=None, clips=None) -> list[tuple[str, object, str | None, str]]:
    """n requests, round-robin over the tabs: (tab, input, model name, expected label)."""
    images = images or sorted(p.stem for p in IMAGES.glob("*.png"))
    labels = load_texts()
    texts = texts or list(labels)
    clips = clips or list(CLIPS)
    out = []
    for i in range(n):
        tab, k = ("image", "text", "speech")[i % 3], i // 3
        if tab == "image":
            name = images[k % len(images)]
            out.append((tab, IMAGES / f"{name}.png", None, name.rsplit("-", 1)[0]))   # horse-1.png: a horse
        elif tab == "text":
            text = texts[k % len(texts)]
            out.append((tab, text, None, labels[text]))
        else:
            clip = clips[k % len(clips)]
            out.append((tab, SPEECH / clip, *CLIPS[clip]))
    return out


def call(client, tab: str, value, model: str | None) -> str:
    from gradio_client import handle_file

    if tab == "image":
        return client.predict(handle_file(str(value)), model, api_name="/classify_image")["label"]
    if tab == "text":
        return client.predict(value, model, api_name="/classify_text")["label"]
    return client.predict(handle_file(str(value)), model, api_name="/recognize_speech")[0]["label"]


def drive(url: str, jobs: list, clients: int, on_progress=None) -> dict:
    """Send `jobs` from `clients` threads; returns per-request records and the wall time."""
    from gradio_client import Client

    local = threading.local()
    done = [0]
    lock = threading.Lock()

    def one(job):
        tab, value, model, expected = job
        if not hasattr(local, "client"):
            local.client = Client(url, verbose=False)
        start = time.perf_counter()
        try:
            label, error = call(local.client, tab, value, model), None
        except Exception as e:   # counted, never fatal: the point is to see them
            label, error = None, f"{type(e).__name__}: {e}"
        record = {"tab": tab, "ms": (time.perf_counter() - start) * 1000, "label": label, "expected": expected,
                  "error": error}
        with lock:
            done[0] += 1
            if on_progress:
                on_progress(done[0])
        return record

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        records = list(pool.map(one, jobs))
    return {"records": records, "seconds": time.perf_counter() - start}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    i = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[i]


def summarise(result: dict) -> dict:
    records = result["records"]
    tabs = {}
    for tab in ("image", "text", "speech"):
        ms = [r["ms"] for r in records if r["tab"] == tab and r["error"] is None]
        tabs[tab] = {"requests": sum(r["tab"] == tab for r in records), "p50_ms": round(percentile(ms, 50), 1),
                     "p95_ms": round(percentile(ms, 95), 1), "p99_ms": round(percentile(ms, 99), 1)}
    errors = [r for r in records if r["error"] is not None]
    wrong = [r for r in records if r["error"] is None and r["label"] != r["expected"]]
    return {"requests": len(records), "errors": len(errors), "wrong_labels": len(wrong),
            "first_errors": [r["error"][:200] for r in errors[:5]],
            "first_wrong": [(r["tab"], r["expected"], r["label"]) for r in wrong[:5]],
            "seconds": round(result["seconds"], 1), "throughput_rps": round(len(records) / result["seconds"], 1),
            "per_tab": tabs}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default: %(default)s)")
    p.add_argument("--requests", type=int, default=500, help="requests in all (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=30, help="requests sent first and not counted (default: %(default)s)")
    p.add_argument("--url", default=None, help="drive a running app instead of launching one (no RSS then)")
    p.add_argument("--checkpoints", default=str(REPO / "checkpoints"))
    p.add_argument("--soak", type=float, default=0, metavar="SECONDS",
                   help="soak for this long instead: ordinary traffic beside hostile visitors (see above)")
    return p


def main(argv=None) -> dict:
    args = get_args_parser().parse_args(argv)
    if args.soak:
        from soak import soak

        report = soak(args.soak, args.clients, args.checkpoints)
        print(json.dumps(report, indent=2))
        return report
    proc, log = None, None
    if args.url:
        url = args.url.rstrip("/") + "/"
    else:
        log = tempfile.NamedTemporaryFile("w", prefix="triptych-load-", suffix=".log", delete=False)
        proc, url = launch(args.checkpoints, log)
    pid = proc.pid if proc else None
    rss = {"start": rss_mb(pid) if pid else None}
    try:
        drive(url, workload(args.warmup), min(args.clients, args.warmup or 1))
        rss["after_warmup"] = rss_mb(pid) if pid else None

        def progress(n):
            if pid and n == args.requests // 2:
                rss["middle"] = rss_mb(pid)

        result = drive(url, workload(args.requests), args.clients, progress)
        rss["end"] = rss_mb(pid) if pid else None
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
    report = {"url": url, "clients": args.clients, **summarise(result),
              "rss_mb": {k: (round(v, 1) if v else v) for k, v in rss.items()}}
    if pid:
        warm = rss["after_warmup"]
        report["rss_growth_after_warmup"] = f"{(rss['end'] - warm) / warm:+.1%}"
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
