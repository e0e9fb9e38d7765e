"""One path from a raw input to the model's input: `evaluate` (and so calibration and validation, which share
its decoding) and the demo's `Predictor.predict` give the same probabilities, file by file, for every task."""

from __future__ import annotations

import json

import pytest

from training.cli import main


def photos(root, sizes=((160, 120), (90, 200), (240, 240), (301, 77))):
    """An imagefolder of photo-sized images (larger than the model's input, of several shapes): a model that
    caches small images and enlarges them sees these through its cache size, or not at all the same."""
    import numpy as np
    from PIL import Image

    for k, colour in enumerate(((220, 30, 30), (30, 200, 40), (40, 40, 220))):
        (root / f"c{k}").mkdir(parents=True)
        for i, (w, h) in enumerate(sizes * 2):
            noise = np.random.default_rng(10 * k + i).integers(-40, 40, (h, w, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype("uint8")
            Image.fromarray(pixels).save(root / f"c{k}" / f"{i}.jpg", quality=90)
    return root


def texts(path):
    import csv

    rows = [(f"the {w} one is {w} today {i}", w) for i in range(8) for w in ("red", "green", "blue")]
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    return path


def clips(root):
    import numpy as np
    import soundfile as sf

    for k, freq in enumerate((300, 900, 2000)):
        (root / f"w{k}").mkdir(parents=True)
        for i in range(6):
            t = np.arange(int(0.6 * 8000)) / 8000
            x = 0.3 * np.sin(2 * np.pi * freq * t) + np.random.default_rng(i).normal(0, 0.01, len(t))
            sf.write(root / f"w{k}" / f"{i}.wav", x.astype("float32"), 8000 + 8000 * (i % 2), subtype="PCM_16")
    return root


CASES = {
    # cache at 16 px, model at 32: the cache size is where the two paths used to part
    "image": (photos, ["--image-size", "32", "--cache-size", "16", "--width", "8", "--batch-size", "8"]),
    "text": (texts, ["--vocab-size", "60", "--embedding-size", "8", "--hidden-size", "8", "--batch-size", "8"]),
    "speech": (clips, ["--sample-rate", "8000", "--channels", "8", "--hidden-size", "8", "--batch-size", "4"]),
}


@pytest.mark.parametrize("task", CASES)
def test_evaluate_and_the_demo_give_the_same_probabilities_file_by_file(task, tmp_path):
    from demo.predictor import Predictor

    make, flags = CASES[task]
    data = make(tmp_path / ("data.csv" if task == "text" else "data"))
    out, written = tmp_path / "run", tmp_path / "predictions.jsonl"
    main([task, "--dataset", str(data), "--output", str(out), "--from-scratch", "--epochs", "2", "--workers", "0",
          "--quiet", "--seed", "1", *flags])
    report = main(["evaluate", "--checkpoint", str(out), "--dataset", str(data), "--split", "train", "--workers", "0",
                   "--predictions", str(written)])
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert len(rows) == report["num_examples"] > 10
    assert sum(r["predicted"] == r["label"] for r in rows) / len(rows) == pytest.approx(report["accuracy"], abs=1e-4)
    predictor = Predictor.load(out)
    for row in rows:
        assert row["input"], row
        served = predictor.predict(row["input"])
        assert served == pytest.approx(row["probabilities"], abs=1e-5), row["input"]
