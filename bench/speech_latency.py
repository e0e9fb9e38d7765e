"""Latency of one speech prediction, as the demo serves it: `python bench/speech_latency.py [checkpoint ...]`.

Loads each checkpoint once with the demo's Predictor, warms up, then times a one-second WAV file end to
end (decode + resample + log-mel + forward + softmax); one step of the Speech tab's Listen mode (a
quarter-second microphone chunk of 44.1 kHz int16 appended to the visitor's buffer, and the latest window
of the model's clip length heard: resample + log-mel + forward + softmax + debounce); and the model's
forward alone. Prints the median and p90 of `--repeats` runs in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(name: str, ms: list[float]) -> str:
    p90 = statistics.quantiles(ms, n=10)[-1]
    return f"{name}: median {statistics.median(ms):.1f} ms, p90 {p90:.1f} ms ({len(ms)} runs)"


def one_second_clip(folder: Path) -> Path:
    """A one-second 44.1 kHz 16-bit WAV, what a browser microphone sends: it must be resampled too."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(44_100) / 44_100
    x = 0.3 * np.sin(2 * np.pi * 300 * t) * np.exp(-((t - 0.5) ** 2) / 0.02) + rng.normal(0, 0.01, t.size)
    path = folder / "clip.wav"
    sf.write(path, x.astype(np.float32), 44_100, subtype="PCM_16")
    return path


def stream_step(predictor, clip: Path):
    """One Listen step as the tab runs it (demo/tabs/speech.py): a hop-long chunk of the looped clip appended
    and the one window it completes heard."""
    import numpy as np
    import soundfile as sf

    from demo.listen import Listener, keyword_model

    data, rate = sf.read(clip, dtype="int16")
    listener = Listener()
    hop = int(rate * listener.settings.hop_seconds)
    looped = np.tile(data, 2)
    listener.step((rate, data), keyword_model(predictor))     # a whole clip first: every later step hears one window
    position = [0]

    def step():
        start = position[0] % len(data)
        position[0] += hop
        listener.step((rate, looped[start:start + hop]), keyword_model(predictor))
    step()
    assert listener.last is not None and listener.last.label is not None, "the clip is too quiet to be heard"
    return step


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shipped = sorted(str(c) for c in (REPO / "checkpoints" / "speech").glob("*/"))
    p.add_argument("checkpoints", nargs="*", default=shipped)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    import torch
    from demo.predictor import Predictor

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        clip = one_second_clip(Path(tmp))
        for folder in args.checkpoints:
            predictor = Predictor.load(folder, args.device)
            inputs = predictor.inputs(str(clip))
            for _ in range(5):
                predictor.predict(str(clip))
            print(f"{predictor.name} on {args.device}, {torch.get_num_threads()} thread(s)")
            print("  " + summary("end to end (1 s WAV at 44.1 kHz)", timed(lambda: predictor.predict(str(clip)),
                                                                          args.repeats)))
            print("  " + summary("Listen step (0.25 s chunk at 44.1 kHz + the latest window)",
                                 timed(stream_step(predictor, clip), args.repeats)))
            print("  " + summary("model forward only", timed(lambda: predictor.probabilities(inputs), args.repeats)))


if __name__ == "__main__":
    main()
