"""Start-up time: `python app.py` until its first successful prediction, against the bare imports.

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


def time_app() -> float:
    from gradio_client import Client, handle_file

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
                client.predict(handle_file(str(REPO / "demo/examples/image/cat.png")), api_name="/classify_image")
                return time.perf_counter() - t
            except Exception:
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    imports = [time_imports() for _ in range(args.runs)]
    app = [time_app() for _ in range(args.runs)]
    floor, total = statistics.median(imports), statistics.median(app)
    print(f"{'measure':<42}{'median s':>10}  runs")
    print(f"{'import torch, torchvision, torchaudio, gradio':<42}{floor:>10.2f}  {', '.join(f'{x:.2f}' for x in imports)}")
    print(f"{'python app.py -> first /classify_image':<42}{total:>10.2f}  {', '.join(f'{x:.2f}' for x in app)}")
    print(f"ratio app / imports: {total / floor:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
