"""Shared fixtures. Tests never touch the network: the Hub is switched off before anything imports it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TRIPTYCH_CACHE", tempfile.mkdtemp(prefix="triptych-cache-"))

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The real datasets the shipped checkpoints were trained on (cifar10/, emotion/, speech_commands/, fsdd/ in
# Hub layout), beside the repository or wherever TRIPTYCH_DATA points; tests that need them skip without.
SHARED_DATA = Path(os.environ.get("TRIPTYCH_DATA", REPO.parent / "shared" / "data"))
CHROMIUM = "/usr/bin/chromium"


def task_settings(task_name: str, *argv: str):
    """The typed settings of `python -m training <task_name> --dataset - ARGV`, as the CLI builds them."""
    from training.parser import get_args_parser, run_settings
    from training.tasks import get_task

    return run_settings(get_task(task_name), get_args_parser().parse_args([task_name, "--dataset", "-", *argv]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the app did not answer at {url} within {timeout:.0f} s")


@pytest.fixture(scope="session")
def served_checkpoints(tmp_path_factory) -> Path:
    """The repo's shipped checkpoints, plus one broken image checkpoint that must not take the app down."""
    root = tmp_path_factory.mktemp("served")
    for task in ("image", "text", "speech"):
        (root / task).mkdir()
        for folder in sorted((REPO / "checkpoints" / task).glob("*/")):
            if (folder / "config.json").is_file():
                shutil.copytree(folder, root / task / folder.name, ignore=shutil.ignore_patterns("resume.pt"))
    broken = root / "image" / "zz_broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"format_version": 1, "task": "image", "labels": ["a", "b"], "model": {}}')
    (broken / "model.safetensors").write_bytes(b"\x00" * 10)
    add_faulty_checkpoints(root)
    return root


# Broken checkpoint folders the app must report as unavailable, naming the file, while it serves the rest
# (tests/test_checkpoint_faults.py). name -> the file the message must name.
FAULTY = {"image/zz_pickle": "model.safetensors", "image/zz_torch_bin": "model.safetensors",
          "image/zz_wrong_labels": "config.json", "text/zz_future": "config.json",
          "text/zz_no_tokenizer": "tokenizer.json", "speech/zz_truncated": "model.safetensors",
          "speech/zz_no_config": "config.json"}
PICKLE_MARKER = "pickle_ran"   # a file the malicious pickles create in the served root if they ever run


def malicious_pickle(marker: Path) -> bytes:
    """A pickle whose loading runs code: it creates `marker`."""
    import pickle

    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').close()",)

    return pickle.dumps(Payload())


def add_faulty_checkpoints(root: Path) -> None:
    import json

    import torch

    def copy(src: str, dst: str, skip=()) -> Path:
        shutil.copytree(REPO / "checkpoints" / src, root / dst,
                        ignore=shutil.ignore_patterns("resume.pt", "*.png", *skip))
        return root / dst

    def edit(folder: Path, **changes) -> None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **changes}))

    marker = root / PICKLE_MARKER
    if (REPO / "checkpoints/image/cifar10/config.json").is_file():
        (copy("image/cifar10", "image/zz_pickle") / "model.safetensors").write_bytes(malicious_pickle(marker))
        bin_folder = copy("image/cifar10", "image/zz_torch_bin", skip=("model.safetensors",))
        torch.save({"conv.weight": torch.zeros(1), "payload": _TorchPayload(str(marker))},
                   bin_folder / "pytorch_model.bin")
        wrong = copy("image/cifar10", "image/zz_wrong_labels")
        # The record agrees with itself (timm's keys too), the weights have ten outputs.
        edit(wrong, labels=["cat", "dog", "frog"], label_names=["cat", "dog", "frog"], num_classes=3)
    if (REPO / "checkpoints/text/emotion/config.json").is_file():
        edit(copy("text/emotion", "text/zz_future"), format_version=999)
        copy("text/emotion", "text/zz_no_tokenizer", skip=("tokenizer.json",))
    if (REPO / "checkpoints/speech/speech_commands/config.json").is_file():
        weights = copy("speech/speech_commands", "speech/zz_truncated") / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        copy("speech/speech_commands", "speech/zz_no_config", skip=("config.json",))


class _TorchPayload:
    """What a hostile pytorch_model.bin holds: unpickling it with torch.load(weights_only=False) runs code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


class ServerURL(str):
    """The app's base URL (a plain str to every caller), also carrying the server's process id."""
    pid: int


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc/<pid>/status (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextlib.contextmanager
def launch_app(checkpoints: Path, *extra: str, log_name: str = "app.log"):
    """`python app.py` on a free port, serving `checkpoints`; yields a ServerURL."""
    port = free_port()
    log = open(Path(checkpoints) / log_name, "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), "--checkpoints",
                             str(checkpoints), *extra], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = ServerURL(f"http://127.0.0.1:{port}/")
    url.pid = proc.pid
    try:
        wait_for(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def app_server(served_checkpoints):
    """`python app.py` on a free port, serving `served_checkpoints`; yields the base URL (with `.pid`)."""
    with launch_app(served_checkpoints) as url:
        yield url


@pytest.fixture(scope="session")
def app_client(app_server):
    from gradio_client import Client

    return Client(app_server, verbose=False)


def sine_wav(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def fake_mic_wav(tmp_path_factory) -> Path:
    """What Chromium's fake microphone plays: a shipped example clip when there is one, else a tone."""
    clip = REPO / "demo" / "examples" / "speech" / "command-yes-1.wav"
    if clip.is_file():
        return clip
    return sine_wav(tmp_path_factory.mktemp("mic") / "mic.wav")


@pytest.fixture(scope="session")
def playwright_driver():
    """The session's one Playwright driver (its sync API runs one at a time): every browser launches from it."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs it with apt-get")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def launch_chromium(playwright, fake_mic_wav: Path):
    """Headless Debian Chromium with a fake camera and a fake microphone that plays `fake_mic_wav` in a loop."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={fake_mic_wav}"])


@pytest.fixture(scope="session")
def browser(playwright_driver, fake_mic_wav):
    """Headless Debian Chromium driven by Playwright, with a fake camera and a fake microphone."""
    b = launch_chromium(playwright_driver, fake_mic_wav)
    yield b
    b.close()


@contextlib.contextmanager
def open_page(browser, url: str, timeout_ms: int = 60_000):
    """A fresh browser context (microphone and camera allowed) on `url`, closed afterwards."""
    context = browser.new_context(permissions=["microphone", "camera"], viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(timeout_ms)
    pg.goto(url)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture()
def page(browser, app_server):
    with open_page(browser, app_server) as pg:
        yield pg


requires_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is not present (set TRIPTYCH_DATA)")


# ------------------------------------------------------------------------- generated image datasets
# Shared by the data, training and torchrun tests: tiny PNGs whose colour depends on the label.

IMAGE_LABELS = ("red", "green", "blue")
LABEL_COLOURS = ((220, 40, 40), (40, 200, 60), (40, 60, 220), (220, 200, 40), (200, 40, 200), (40, 200, 200))


def image_png(colour, size: int = 16, seed: int = 0, noise: int = 30) -> bytes:
    """A size x size PNG of `colour` (an RGB triple, or the index of one in LABEL_COLOURS) plus seeded noise."""
    import io

    import numpy as np
    from PIL import Image

    rgb = np.array(LABEL_COLOURS[colour % len(LABEL_COLOURS)] if isinstance(colour, int) else colour, dtype=np.int16)
    jitter = np.random.default_rng(seed).integers(-noise, noise + 1, (size, size, 3))
    pixels = np.clip(rgb + jitter, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def make_imagefolder(root: Path, per_label: int = 16, size: int = 16, labels=IMAGE_LABELS) -> Path:
    """root/<label>/<i>.png: the `imagefolder` layout."""
    for k, label in enumerate(labels):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            (root / label / f"{i:03d}.png").write_bytes(image_png(k, size, seed=1000 * k + i))
    return root


def image_rows(per_label: int, *, size: int = 16, labels=IMAGE_LABELS, seed: int = 0, noise: int = 30):
    """(png bytes, label index) pairs, labels interleaved."""
    return [(image_png(k, size, seed=seed + 1000 * k + i, noise=noise), k)
            for i in range(per_label) for k in range(len(labels))]


def write_image_parquet(path: Path, rows, *, labels=IMAGE_LABELS, image_column: str = "image",
                        label_column: str = "label", string_labels: bool = False) -> Path:
    """One parquet file with an Image column and a ClassLabel (or plain string) label column."""
    import datasets

    label_feature = datasets.Value("string") if string_labels else datasets.ClassLabel(names=list(labels))
    features = datasets.Features({image_column: datasets.Image(), label_column: label_feature})
    values = [labels[y] if string_labels else y for _, y in rows]
    ds = datasets.Dataset.from_dict({image_column: [{"bytes": b, "path": None} for b, _ in rows],
                                     label_column: values}, features=features)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))
    return path


def make_image_parquet(root: Path, train_per_label: int = 16, val_per_label: int = 4, **kwargs) -> Path:
    """root/data/{train,validation}-00000-of-00001.parquet: the layout of a dataset repo on the Hub."""
    size, noise = kwargs.pop("size", 16), kwargs.pop("noise", 30)
    labels = kwargs.get("labels", IMAGE_LABELS)
    write_image_parquet(root / "data" / "train-00000-of-00001.parquet",
                        image_rows(train_per_label, size=size, labels=labels, noise=noise), **kwargs)
    if val_per_label:
        write_image_parquet(root / "data" / "validation-00000-of-00001.parquet",
                            image_rows(val_per_label, size=size, labels=labels, seed=500, noise=noise), **kwargs)
    return root


@pytest.fixture(scope="module")
def colours_parquet(tmp_path_factory) -> Path:
    """A tiny image dataset in Hub layout, one per test module: 3 labels; train 8 rows each, validation 3
    rows each."""
    return make_image_parquet(tmp_path_factory.mktemp("hub") / "colours", train_per_label=8, val_per_label=3)


@pytest.fixture(scope="module")
def torch_one_thread():
    """One intra-op thread for tiny models: on a busy machine torch's spinning worker threads make a
    16-pixel batch take seconds instead of milliseconds (measured: an epoch 15 s with 2 threads, 0.13 s with 1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
