"""Start-up time: `python app.py` until its first successful prediction, against the bare imports; and
each endpoint's first call against its later ones (the models are warmed up at start-up, so the first
visitor should wait no more than 3x as long as the next).

    .venv/bin/python bench/startup.py [--runs 3]

The floor is `python -c "import torch, torchvision, torchaudio, gradio"` on the same machine in the same
run; the goal is at most 1.5x that. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_imports() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, torchvision, torchaudio, gradio"], check=True, env=ENV)
    return time.perf_counter() - t


FIRST_CALLS = (   # endpoint, its input; each endpoint's first call after start-up against its later ones
    ("/classify_image_json", "demo/examples/image/cat-1.png"),
    ("/explain_image", "demo/examples/image/cat-1.png"),
    ("/classify_text_json", "i was terrified walking home alone in the dark last night"),
    ("/explain_text", "i was terrified walking home alone in the dark last night"),
    ("/recognize_speech_json", "demo/examples/speech/command-yes-1.wav"),
    ("/explain_speech", "demo/examples/speech/command-yes-1.wav"),
)


def call(client, endpoint: str, value) -> float:
    from gradio_client import handle_file

    arg = handle_file(str(REPO / value)) if value.startswith("demo/") else value
    t = time.perf_counter()
    client.predict(arg, api_name=endpoint)
    return time.perf_counter() - t


def time_app(later: int = 5) -> tuple[float, dict]:
    """(seconds from `python app.py` to its first answered /classify_image_json, {endpoint: (first call s,
    median of the `later` calls after it)})."""
    from gradio_client import Client

    port = free_port()
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("app.py exited")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                time.sleep(0.1)
        calls = {}
        for endpoint, value in FIRST_CALLS:
            first = call(client, endpoint, value)
            if not calls:
                started = time.perf_counter() - t
            calls[endpoint] = (first, statistics.median(call(client, endpoint, value) for _ in range(later)))
        return started, calls
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    imports = [time_imports() for _ in range(args.runs)]
    runs = [time_app() for _ in range(args.runs)]
    floor, total = statistics.median(imports), statistics.median(r[0] for r in runs)
    print(f"{'measure':<46}{'median s':>10}  runs")
    print(f"{'import torch, torchvision, torchaudio, gradio':<46}{floor:>10.2f}  {', '.join(f'{x:.2f}' for x in imports)}")
    print(f"{'python app.py -> first /classify_image_json':<46}{total:>10.2f}  "
          f"{', '.join(f'{r[0]:.2f}' for r in runs)}")
    print(f"ratio app / imports: {total / floor:.2f} (goal <= 1.5)\n")
    print(f"{'endpoint':<26}{'first call ms':>14}{'later p50 ms':>14}{'ratio':>8}  (goal <= 3)")
    for endpoint, _ in FIRST_CALLS:
        first = statistics.median(r[1][endpoint][0] for r in runs) * 1000
        later = statistics.median(r[1][endpoint][1] for r in runs) * 1000
        print(f"{endpoint:<26}{first:>14.1f}{later:>14.1f}{first / later:>8.2f}")


if __name__ == "__main__":
    main()
