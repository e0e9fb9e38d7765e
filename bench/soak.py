"""The soak behind `python bench/load.py --soak SECONDS`: ordinary visitors beside hostile ones, on the app as a
public Space runs it.

The app runs with SPACE_ID set, Teach on, its temporary folder (Gradio's cache and Teach's sessions) a
folder of the soak's own, and a keep time of KEEP seconds for Teach's sessions. First the ordinary traffic
alone for a minute (a third of `seconds` at most), for its latency without hostile visitors; then for
`seconds`:
- `clients` threads send the load test's ordinary requests (the examples, each with its known answer);
- two hostile threads send, round robin, every case of bench/hostile.py (each from a fresh session) and
  three Teach projects: one that trains, one that fails (a zip with no class
  folders), and the first one's name again from the same session (taken).
Then, after KEEP plus a sweep, the disk the app left in its temporary folder is measured. Reported:
ordinary errors and wrong labels (goal: 0), ordinary latency per tab, what each hostile case got (a
message, a prediction, or a fault: a generic server error, a dropped connection), the server's peak memory
over the whole soak (VmHWM) and its RSS at the start and the end, and the disk in use during and after.
Nothing is asserted: the figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import hostile as hostile_cases
import hostile_files as hf
from load import call, launch, percentile, workload

KEEP = 60            # Teach's keep time during the soak ($TRIPTYCH_TEACH_KEEP_SECONDS); its sweep runs every 15 s
FAULT_WORDS = ("Something went wrong on the server", "Traceback", "Connection", "verbose error reporting")


def disk_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20 if folder.exists() else 0.0


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def teach_cases(folder: Path) -> dict:
    """The Teach projects a hostile visitor sends: name -> list of (api_name, args), sent in one session."""
    rows = "".join(f'"{text} {k}",{label}\n' for k in range(6) for label, text in
                   (("happy", "what a lovely sunny day"), ("grumpy", "the train is late again")))
    moods = folder / "moods.csv"
    moods.write_text("text,label\n" + rows)
    flat = folder / "flat.zip"
    flat.write_bytes(hf.zip_of({"0.png": hf.strip_png(8, 8)}))
    return {"Teach: a project that trains, then its name again": [("/teach", ["text", moods, "moods"])] * 2,
            "Teach: a zip without class folders": [("/teach", ["image", flat, "flat"])]}


def ordinary(client, deadline: float, records: list, lock) -> None:
    jobs, k = workload(300), 0
    while time.monotonic() < deadline:
        tab, value, model, expected = jobs[k % len(jobs)]
        k += 1
        start = time.perf_counter()
        try:
            label, error = call(client, tab, value, model), None
        except Exception as e:   # counted: the point is to see them
            label, error = None, f"{type(e).__name__}: {e}"[:200]
        with lock:
            records.append({"tab": tab, "ms": (time.perf_counter() - start) * 1000, "error": error,
                            "wrong": error is None and label != expected})


def outcome(said: str) -> str:
    if said == "prediction":
        return "prediction"
    return "fault" if any(word in said for word in FAULT_WORDS) or said == "error: Error" else "message"


def hostile(client, deadline: float, cases: list, outcomes: dict, lock) -> None:
    k = 0
    while time.monotonic() < deadline:
        name, calls = cases[k % len(cases)]
        k += 1
        client.session_hash = uuid.uuid4().hex       # a new visitor: a session of its own
        for api_name, args in calls:
            said = hostile_cases.answer(client, api_name, list(args))
            with lock:
                outcomes[name][outcome(said)] += 1
                if outcome(said) == "fault":
                    outcomes["faults"][said[:160]] += 1


def drive_soak(clients: dict, seconds: float, cases: list) -> tuple[list, dict]:
    """A thread per ordinary client for `seconds`, beside one per hostile client (none when `cases` is
    empty). The clients are made beforehand, one at a time: each asks the server for its whole config,
    which takes seconds on a busy machine, and gradio_client gives up after five."""
    records, outcomes, lock = [], defaultdict(Counter), threading.Lock()
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=ordinary, args=(c, deadline, records, lock)) for c in clients["ordinary"]]
    threads += [threading.Thread(target=hostile, args=(c, deadline, cases[i::2], outcomes, lock))
                for i, c in enumerate(clients["hostile"]) if cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return records, outcomes


def latency(records: list) -> dict:
    tabs = {}
    for tab in ("image", "text", "speech"):
        ms = [r["ms"] for r in records if r["tab"] == tab and r["error"] is None]
        tabs[tab] = {"requests": sum(r["tab"] == tab for r in records),
                     **{f"p{q}_ms": round(percentile(ms, q)) if ms else None for q in (50, 95, 99)}}
    errors = [r["error"] for r in records if r["error"]]
    return {"requests": len(records), "errors": len(errors), "first_errors": errors[:3],
            "wrong_labels": sum(r["wrong"] for r in records), "per_tab": tabs}


def soak(seconds: float, clients: int, checkpoints: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix="triptych-soak-"))
    tmp = work / "tmp"
    tmp.mkdir()
    files = hostile_cases.write_cases(list(hostile_cases.CASES), work)
    cases = [(name, [hostile_cases.CASES[name][2](files[name])]) for name in hostile_cases.CASES]
    cases += list(teach_cases(work).items())
    env = {"SPACE_ID": "bench/soak", "TRIPTYCH_TEACH": "1", "TMPDIR": str(tmp), "TRIPTYCH_TEACH_KEEP_SECONDS": str(KEEP)}
    log = open(work / "app.log", "w")
    proc, url = launch(checkpoints, log, "--host", "127.0.0.1", env=env)
    try:
        from gradio_client import Client

        made = {"ordinary": [Client(url, verbose=False) for _ in range(clients)],
                "hostile": [Client(url, verbose=False) for _ in range(2)]}
        start_rss = status_mb(proc.pid, "VmRSS")
        calm, _ = drive_soak(made, min(60.0, seconds / 3), [])     # the same traffic alone, first
        records, outcomes = drive_soak(made, seconds, cases)
        report = {"seconds": seconds, "clients": clients, "ordinary_alone_first": latency(calm),
                  "ordinary": latency(records),
                  "hostile": {name: dict(counts) for name, counts in sorted(outcomes.items())},
                  "server_mb": {"rss_start": round(start_rss), "rss_end": round(status_mb(proc.pid, "VmRSS")),
                                "peak_VmHWM": round(status_mb(proc.pid, "VmHWM"))},
                  "disk_mb": {"teach_at_end": round(disk_mb(tmp / "triptych-teach"), 1),
                              "gradio_cache_at_end": round(disk_mb(tmp / "gradio"), 1)}}
        time.sleep(KEEP + KEEP / 4 + 5)        # past the keep time and one sweep
        report["disk_mb"]["teach_after_keep_time"] = round(disk_mb(tmp / "triptych-teach"), 1)
        report["disk_mb"]["teach_files_after_keep_time"] = sum(1 for p in (tmp / "triptych-teach").rglob("*")
                                                                if p.is_file())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        report_log = (work / "app.log").read_text()
        shutil.rmtree(work, ignore_errors=True)
    report["server_log_tracebacks"] = report_log.count("Traceback")
    return report

