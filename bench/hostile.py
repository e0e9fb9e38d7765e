"""What each hostile upload costs the server: `python bench/hostile.py [--url URL] [--only NAME ...]`.

Launches `app.py` with the Teach tab on a copy of the shipped checkpoints (or drives `--url`, without memory
figures), then sends each case of `CASES` once, through gradio_client as a visitor would, and prints one
row per case: its answer (the start of the message, or "prediction"), the seconds it took, and how far it
raised the server's peak memory (VmHWM in /proc/PID/status, reset before each case through clear_refs:
a decode that hands its memory back at once is missed by the current RSS). After every case the server
must still classify an ordinary image. The inputs come from tests/hostile_files.py, the makers the tests use.
Nothing is asserted: the figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

import hostile_files as hf  # noqa: E402
from load import launch  # noqa: E402

EXAMPLE = REPO / "demo" / "examples" / "image" / "frog-1.png"


def image_json(path):
    return ("/classify_image_json", [path, None])


def image_batch(path):
    return ("/classify_image_batch", [[path], None])


def text_batch(path):
    return ("/classify_text_batch", [[path], None])


def teach(task):
    return lambda path: ("/teach", [task, path, "bench-model"])


def text(value: str, api_name: str = "/classify_text_json"):
    return lambda _: (api_name, [value, None])


# name -> (file name, maker, call). Each maker runs once, before the server starts; a case without a file
# sends its call's arguments as they are.
CASES = {
    "Text of 1,000,000 characters": (None, None, text("i am furious " * 76_924)),
    "Text of 1,000,000 characters, explanation": (None, None, text("i am furious " * 76_924, "/explain_text")),
    "Text of 100,000 letters, no space": (None, None, text("x" * 100_000)),
    "PNG 300000x8 (7 KB), single": ("strip.png", lambda: hf.strip_png(300_000, 8), image_json),
    "PNG 300000x8, explanation": ("strip.png", lambda: hf.strip_png(300_000, 8),
                                  lambda p: ("/explain_image", [p, None])),
    "PNG 300000x8, batch": ("strip.png", lambda: hf.strip_png(300_000, 8), image_batch),
    "16-bit PNG 10000x5000 (50 MP)": ("deep.png", lambda: hf.deep_png(10_000, 5_000), image_json),
    "EPS named .png": ("logo.png", hf.eps_file, image_json),
    "WAV header: 384 kHz, 64 channels, 4 GB": ("forged.wav", lambda: hf.forged_wav(384_000, 64),
                                               lambda p: ("/recognize_speech_json", [p, None])),
    "CSV 20000 columns x 20000 rows": ("wide.csv", lambda: hf.wide_csv(20_000, 20_000), text_batch),
    "TXT of 4 million lines (8 MB)": ("lines.txt", lambda: hf.many_lines(4_000_000), text_batch),
    "zip of 1M directory records (46 MB)": ("records.zip", lambda: hf.directory_records(1_000_000), image_batch),
    "AIFF named .wav": ("clip.wav", lambda: hf.wav(hf.tone(), fmt="AIFF"), lambda p: ("/recognize_speech_json",
                                                                                    [p, None])),
    "Teach CSV of 20000 columns": ("wide.csv", lambda: hf.wide_csv(20_000, 3), teach("text")),
    "Teach CSV, a cell of 200,000 characters": ("long.csv", lambda: hf.long_cell_csv(200_000), teach("text")),
    "Teach zip of 1M directory records": ("records.zip", lambda: hf.directory_records(1_000_000), teach("image")),
}


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> float:
    """Reset the process's peak RSS to its current RSS (Linux: clear_refs 5); returns it in MB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return peak_mb(pid)


def answer(client, api_name: str, args: list) -> str:
    from gradio_client import handle_file

    args = [handle_file(str(a)) if isinstance(a, Path) else
            [handle_file(str(x)) for x in a] if isinstance(a, list) else a for a in args]
    try:
        client.predict(*args, api_name=api_name)
    except Exception as e:   # the point is to see the message
        return f"error: {str(e).strip()[:90]}"
    return "prediction"


def run_case(client, pid, name: str, path: Path | None) -> dict:
    from gradio_client import handle_file

    api_name, args = CASES[name][2](path)
    before = reset_peak(pid) if pid else None
    start = time.perf_counter()
    said = answer(client, api_name, args)
    seconds = time.perf_counter() - start
    row = {"case": name, "answer": said, "seconds": round(seconds, 2)}
    if pid:
        row["peak_rise_mb"] = round(peak_mb(pid) - before, 0)
    try:
        client.predict(handle_file(str(EXAMPLE)), None, api_name="/classify_image_json")
        row["still_serving"] = True
    except Exception as e:
        row["still_serving"] = f"{type(e).__name__}: {e}"[:120]
    return row


def write_cases(names, folder: Path) -> dict[str, Path | None]:
    """Each case's file in `folder` (None for a case without one)."""
    files = {}
    for name in names:
        file_name, make, _ = CASES[name]
        files[name] = folder / f"{len(files)}-{file_name}" if file_name else None
        if files[name]:
            files[name].write_bytes(make())
    return files


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=None, help="drive a running app instead of launching one (no memory figures)")
    p.add_argument("--only", nargs="*", default=None, help="case names (substrings) to run; default: all")
    return p


def main(argv=None) -> list[dict]:
    args = get_args_parser().parse_args(argv)
    from gradio_client import Client

    names = [n for n in CASES if not args.only or any(s in n for s in args.only)]
    work = Path(tempfile.mkdtemp(prefix="triptych-hostile-"))
    files = write_cases(names, work)
    proc = log = None
    try:
        if args.url:
            url = args.url.rstrip("/") + "/"
        else:
            checkpoints = work / "checkpoints"
            shutil.copytree(REPO / "checkpoints", checkpoints, ignore=shutil.ignore_patterns("resume.pt"))
            log = open(work / "app.log", "w")
            proc, url = launch(str(checkpoints), log, "--teach")
        client = Client(url, verbose=False)
        rows = []
        for name in names:
            rows.append(run_case(client, proc.pid if proc else None, name, files[name]))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
