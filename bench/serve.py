"""Serving speed: each tab's HTTP API against the framework's floor and the model's floor.

    .venv/bin/python bench/serve.py [--requests 200] [--concurrent-requests 200] [--clients 8] [--tabs image text speech]
    .venv/bin/python bench/serve.py --requests 30 --concurrent-requests 40     # a quick run

Starts `app.py`'s own `main()` (same queue, concurrency and torch thread count) in a subprocess on a free
port, with one extra hidden endpoint per tab added from here, never shipped in the product: `/echo_<tab>`
takes the same input components and fills the same output components as the tab's API endpoint, but its
function does nothing (the framework's floor: upload, queue, pre/postprocessing, HTTP/SSE). Then, per tab:

- latency: `--requests` sequential calls through `gradio_client`, app and echo interleaved one by one so
  that load from other work on the machine hits both alike; p50/p95 of each;
- bare: `Predictor.predict` on the same input in this process, with the app's thread count (the model's
  floor, decoding and preprocessing included, as the endpoint does it);
- ratio `app p50 / (echo p50 + bare p50)`, goal <= 1.15;
- throughput: `--clients` concurrent clients sending `--concurrent-requests` calls in all, against the ideal
  `cores / bare CPU seconds per request`, goal >= 0.8; also the echo endpoint's throughput (the framework's
  own ceiling) and the app process's CPU milliseconds per request for both, read from /proc, which say
  where the time goes.

Prints a table; asserts nothing. Numbers on a shared machine are noisy: repeat (`--repeat`) and read the
medians that are printed at the end.

    .venv/bin/python bench/serve.py --shipped [--write]

measures every checkpoint folder under checkpoints/ instead (whatever is shipped, never a fixed list): its
bare `Predictor.predict` p50 on one CPU thread, on its task's sample input (an example file, decoding
included), with its size and recorded scores and training time; `--write` puts that table into README.md
and bench/RESULTS.md between their `shipped-checkpoints` markers (bench/shipped.py).

    .venv/bin/python bench/serve.py --inference-api [--requests 200]

measures the Inference API, `POST /models/<task>/<name>`, against a bare FastAPI echo plus the bare model
instead, goal <= 1.3 (bench/inference_api.py). PyTorch against ONNX on one thread: bench/portable.py.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from shipped import IMAGE_INPUT, TEXT_INPUT, shipped_table, speech_input, write_table  # noqa: E402  (bench/)

TABS = {   # tab -> (API endpoint, echo endpoint)
    "image": ("/classify_image", "/echo_image"),
    "text": ("/classify_text", "/echo_text"),
    "speech": ("/recognize_speech", "/echo_speech"),
}
INPUTS = {"image": IMAGE_INPUT, "text": TEXT_INPUT, "speech": None}   # speech: the first example clip, at run time


# ------------------------------------------------------------------------------------- the app side

def add_echo_endpoints(demo) -> None:
    """`/echo_<tab>`: the inputs and outputs of each tab's API endpoint, with a function that does nothing."""
    import gradio as gr

    by_name = {f.api_name: f for f in demo.fns.values()}
    with demo:
        for tab, (api, echo) in TABS.items():
            fn = by_name.get(api.lstrip("/"))
            if fn is None:
                continue
            n_out = len(fn.outputs)

            def nothing(*_inputs, _n=n_out):
                label = {"echo": 1.0}
                return label if _n == 1 else (label, *[""] * (_n - 1))
            trigger = gr.Button(visible=False)
            trigger.click(nothing, list(fn.inputs), list(fn.outputs), api_name=echo.lstrip("/"))


def serve(port: int) -> None:
    """Run the product's app.main() with the echo endpoints added to the demo it builds."""
    import app

    build = app.build_demo

    def build_with_echo(*a, **kw):
        demo = build(*a, **kw)
        add_echo_endpoints(demo)
        return demo
    app.build_demo = build_with_echo
    app.main(["--port", str(port)])


# ---------------------------------------------------------------------------------- the client side

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from gradio_client import Client
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}; run `{sys.executable} {__file__} --serve {port}` to see why")
        try:
            Client(f"http://127.0.0.1:{port}/", verbose=False)
            return proc
        except Exception:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the app did not start within 300 s")


def api_argument(tab: str):
    from gradio_client import handle_file
    raw = INPUTS[tab]
    return raw if tab == "text" else handle_file(str(raw))


def percentile(ms: list[float], q: float) -> float:
    return statistics.quantiles(ms, n=100, method="inclusive")[int(q) - 1] if len(ms) > 1 else ms[0]


def latency(client, tab: str, n: int) -> tuple[list[float], list[float]]:
    """n sequential calls to the tab's endpoint and n to its echo, interleaved; milliseconds."""
    api, echo = TABS[tab]
    for _ in range(3):   # warm-up: first-call paths, caches
        client.predict(api_argument(tab), api_name=api)
        client.predict(api_argument(tab), api_name=echo)
    app_ms, echo_ms = [], []
    for i in range(2 * n):
        name, out = (api, app_ms) if i % 2 == 0 else (echo, echo_ms)
        t = time.perf_counter()
        client.predict(api_argument(tab), api_name=name)
        out.append((time.perf_counter() - t) * 1000)
    return app_ms, echo_ms


def bare(tab: str, n: int, checkpoints: Path) -> tuple[list[float], float]:
    """(ms per Predictor.predict, CPU seconds per call) in this process, as the endpoint calls it."""
    from demo.predictor import Predictor
    from training.tasks import get_task
    from training.tasks import text as text_task

    predictor = Predictor.load(checkpoints / tab / get_task(tab).default_model, "cpu")
    raw = str(INPUTS[tab]) if tab != "text" else INPUTS[tab]

    def call():
        if tab == "text":    # the endpoint tokenises once more, for its truncation note
            text_task.tokenize(predictor.task_config, raw)
        if tab == "speech":  # the endpoint decodes once (listen) and predicts from what it heard
            from training.tasks.speech import listen
            return predictor.predict(listen(predictor.task_config, raw))
        return predictor.predict(raw)
    for _ in range(5):
        call()
    ms = []
    cpu0 = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        call()
        ms.append((time.perf_counter() - t) * 1000)
    return ms, (time.process_time() - cpu0) / n


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(url: str, api: str, tab: str, clients: int, total: int, pid: int) -> tuple[float, float, float]:
    """(requests per second, server CPU ms per request, client CPU ms per request) with `clients` threads, each with its own Client,
    sending `total` calls in all to `api`."""
    from gradio_client import Client

    pool = [Client(url, verbose=False) for _ in range(clients)]
    for c in pool:
        c.predict(api_argument(tab), api_name=api)
    per = [total // clients + (i < total % clients) for i in range(clients)]
    errors = []

    def work(c, k):
        try:
            for _ in range(k):
                c.predict(api_argument(tab), api_name=api)
        except Exception as e:   # reported, not raised: a benchmark prints what it saw
            errors.append(repr(e))
    threads = [threading.Thread(target=work, args=(c, k)) for c, k in zip(pool, per)]
    cpu0, client0 = cpu_seconds(pid), time.process_time()
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    if errors:
        print(f"  {tab}: {len(errors)} client(s) failed, e.g. {errors[0]}", file=sys.stderr)
    server_ms, client_ms = (cpu_seconds(pid) - cpu0) * 1000 / total, (time.process_time() - client0) * 1000 / total
    return total / wall, server_ms, client_ms


def run_once(args, url: str, cores: int, pid: int) -> dict:
    from gradio_client import Client

    client = Client(url, verbose=False)
    rows = {}
    for tab in args.tabs:
        app_ms, echo_ms = latency(client, tab, args.requests)
        bare_ms, bare_cpu = bare(tab, args.bare_requests, args.checkpoints)
        rps, server_ms, client_ms = throughput(url, TABS[tab][0], tab, args.clients, args.concurrent_requests, pid)
        echo_rps, echo_server_ms, _ = throughput(url, TABS[tab][1], tab, args.clients, args.concurrent_requests, pid)
        ideal = cores / bare_cpu
        row = {"echo_rps": echo_rps, "server_cpu_ms": server_ms, "echo_server_cpu_ms": echo_server_ms,
               "client_cpu_ms": client_ms, "app_p50": statistics.median(app_ms), "app_p95": percentile(app_ms, 95),
               "echo_p50": statistics.median(echo_ms), "echo_p95": percentile(echo_ms, 95),
               "bare_p50": statistics.median(bare_ms), "bare_cpu_ms": bare_cpu * 1000,
               "rps": rps, "ideal_rps": ideal}
        row["ratio"] = row["app_p50"] / (row["echo_p50"] + row["bare_p50"])
        row["tput_ratio"] = rps / ideal
        rows[tab] = row
        print_row(tab, row)
    return rows


HEADER = (f"{'tab':<8}{'app p50':>9}{'app p95':>9}{'echo p50':>9}{'echo p95':>9}{'bare p50':>9}{'bare cpu':>9}"
          f"{'ratio':>7}{'req/s':>8}{'ideal':>8}{'tput':>6}{'echo r/s':>9}{'srv cpu':>8}{'echo cpu':>9}{'cli cpu':>8}")


def print_row(tab: str, r: dict) -> None:
    print(f"{tab:<8}{r['app_p50']:>9.1f}{r['app_p95']:>9.1f}{r['echo_p50']:>9.1f}{r['echo_p95']:>9.1f}"
          f"{r['bare_p50']:>9.1f}{r['bare_cpu_ms']:>9.1f}{r['ratio']:>7.2f}{r['rps']:>8.1f}{r['ideal_rps']:>8.1f}"
          f"{r['tput_ratio']:>6.2f}{r['echo_rps']:>9.1f}{r['server_cpu_ms']:>8.1f}{r['echo_server_cpu_ms']:>9.1f}"
          f"{r['client_cpu_ms']:>8.1f}",
          flush=True)


def measure_inference_api(args, port: int, proc: subprocess.Popen) -> None:
    import torch

    import inference_api

    echo_port = free_port()
    echo = inference_api.start_echo(echo_port)
    try:
        print(f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}; milliseconds; ratio = api p50 / "
              "(FastAPI echo p50 + bare p50), goal <= 1.3", flush=True)
        inference_api.run(f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{echo_port}/", args.tabs,
                          args.checkpoints, args.requests)
    finally:
        for p in (echo, proc):
            p.terminate()
            p.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200, help="sequential calls per tab, app and echo each")
    p.add_argument("--bare-requests", type=int, default=200, help="in-process Predictor.predict calls per tab")
    p.add_argument("--concurrent-requests", type=int, default=200, help="calls in all for the throughput run")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients for the throughput run")
    p.add_argument("--tabs", nargs="+", choices=tuple(TABS), default=list(TABS))
    p.add_argument("--repeat", type=int, default=1, help="repeat the whole measurement; medians are printed")
    p.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints")
    p.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)   # internal: the app process
    p.add_argument("--shipped", action="store_true", help="measure every shipped checkpoint's bare p50 instead")
    p.add_argument("--write", action="store_true", help="with --shipped: write the table into README.md and RESULTS.md")
    p.add_argument("--inference-api", action="store_true",
                   help="measure POST /models/<task>/<name> against a bare FastAPI echo + the bare model instead")
    p.add_argument("--fastapi-echo", type=int, default=None, help=argparse.SUPPRESS)   # internal: the echo process
    args = p.parse_args()
    if args.serve is not None:
        return serve(args.serve)
    if args.fastapi_echo is not None:
        from inference_api import serve_echo
        return serve_echo(args.fastapi_echo)
    if args.shipped:
        table = shipped_table(args.checkpoints, args.bare_requests)
        print(table)
        if args.write:
            for path in (REPO / "README.md", REPO / "bench" / "RESULTS.md"):
                write_table(path, table)
        return None

    import torch
    from app import CONCURRENCY
    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores // CONCURRENCY))   # what app.main() sets: the model's floor as served
    INPUTS["speech"] = speech_input()
    port = free_port()
    proc = start_app(port)
    if args.inference_api:
        return measure_inference_api(args, port, proc)
    try:
        print(f"{cores} cores, torch threads {torch.get_num_threads()} (app: cores / {CONCURRENCY} concurrent); "
              f"milliseconds, throughput in requests/s; ratio = app p50 / (echo p50 + bare p50), goal <= 1.15; "
              f"tput = req/s / ideal (cores / bare cpu), goal >= 0.8; echo r/s = the echo endpoint's throughput "
              f"(the framework's ceiling); srv cpu / echo cpu = the app process's CPU ms per "
              f"request; cli cpu = this (client) process's CPU ms per request")
        runs = []
        for i in range(args.repeat):
            print(f"run {i + 1}/{args.repeat}\n{HEADER}", flush=True)
            runs.append(run_once(args, f"http://127.0.0.1:{port}/", cores, proc.pid))
        if args.repeat > 1:
            print(f"median of {args.repeat} runs\n{HEADER}")
            for tab in args.tabs:
                print_row(tab, {k: statistics.median(r[tab][k] for r in runs) for k in runs[0][tab]})
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
