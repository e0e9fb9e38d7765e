"""Spoken words in synthetic voices (espeak-ng), as a Hub-layout dataset of two voice-disjoint splits.

    python recipes/synthetic_voices.py --out .data/synthetic_voices          # Speech Commands' keywords
    python recipes/synthetic_voices.py --out .data/synthetic_digits --vocabulary digits   # "zero".."nine"
    (needs espeak-ng: apt-get install espeak-ng)

`train` holds voices for training (the speech recipes mix them in), `test` other voices that no training run
hears, for `python -m training evaluate --split test`. A voice is one of espeak-ng's English dialects (8)
with one of its voice variants (about 100; a variant sets pitch, formants, breathiness...), at a speed and
pitch drawn per voice; the variants of the two splits are disjoint. With `--vocabulary commands` each voice
says the 10 command words and three of the 25 other Speech Commands words (the `_unknown_` label: labels are
the keyword layout's 12 names); with `digits`, the ten digits (labels "0" to "9", as the Free Spoken Digit
Dataset names them). Clips are 16 kHz mono FLAC, at most one second, in columns audio (Audio,
decode=False), label (ClassLabel) and the voice, named as the datasets they go with name their speakers
(speaker_id as Speech Commands; speaker for digits, as FSDD).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIALECTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
OTHER_WORDS = ("backward", "bed", "bird", "cat", "dog", "eight", "five", "follow", "forward", "four", "happy", "house",
               "learn", "marvin", "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "visual", "wow", "zero")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_EVERY = 4      # every 4th voice variant is a test voice
RATE = 16_000


def variants() -> list[str]:
    """espeak-ng's voice variants (the files it lists under `--voices=variant`)."""
    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[-1].split("/")[-1] for line in listing.splitlines()[1:] if line.strip())


def say(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """`word` spoken by espeak-ng, as float32 samples at RATE, cut to one second."""
    import soundfile as sf
    import torch
    import torchaudio

    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                         capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    samples = torchaudio.functional.resample(torch.from_numpy(samples), rate, RATE).numpy()
    return samples[:RATE]


def words(vocabulary: str, rng) -> list[tuple[str, str]]:
    """(word, label) that one voice says."""
    from training.tasks.speech import COMMANDS, UNKNOWN

    if vocabulary == "digits":
        return [(word, str(k)) for k, word in enumerate(DIGITS)]
    return [(w, w) for w in COMMANDS] + [(w, UNKNOWN) for w in rng.choice(OTHER_WORDS, 3, replace=False)]


def label_names(vocabulary: str) -> list[str]:
    from training.tasks.speech import KEYWORD_LABELS

    return [str(k) for k in range(10)] if vocabulary == "digits" else list(KEYWORD_LABELS)


def clips(split: str, voices_per_dialect: int, seed: int, vocabulary: str):
    """(samples, label name, voice) of every clip of `split`."""
    rng = np.random.default_rng(seed + (split == "test"))
    all_variants = variants()
    mine = [v for k, v in enumerate(all_variants) if (k % TEST_EVERY == 0) == (split == "test")]
    for dialect in DIALECTS:
        for variant in rng.permutation(mine)[:voices_per_dialect]:
            voice, speed, pitch = f"{dialect}+{variant}", int(rng.integers(110, 190)), int(rng.integers(20, 80))
            for word, label in words(vocabulary, rng):
                yield say(word, voice, speed, pitch), label, f"{voice} s{speed} p{pitch}"


def write_split(out: Path, split: str, voices_per_dialect: int, seed: int, vocabulary: str) -> int:
    import datasets
    import soundfile as sf

    names = label_names(vocabulary)
    audio, labels, speakers = [], [], []
    for k, (samples, label, voice) in enumerate(clips(split, voices_per_dialect, seed, vocabulary)):
        buffer = io.BytesIO()
        sf.write(buffer, samples, RATE, format="FLAC", subtype="PCM_16")
        audio.append({"bytes": buffer.getvalue(), "path": f"{label}/{k:05d}.flac"})
        labels.append(names.index(label))
        speakers.append(voice)
    speaker = "speaker" if vocabulary == "digits" else "speaker_id"
    features = datasets.Features({"audio": datasets.Audio(decode=False), "label": datasets.ClassLabel(names=names),
                                  speaker: datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"audio": audio, "label": labels, speaker: speakers}, features=features)
    (out / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(out / "data" / f"{split}-00000-of-00001.parquet"))
    return len(ds)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder to write (Hub layout: data/<split>-00000-of-00001.parquet)")
    p.add_argument("--train-voices", type=int, default=30, help="voices per dialect in train (default: %(default)s)")
    p.add_argument("--test-voices", type=int, default=15, help="voices per dialect in test (default: %(default)s)")
    p.add_argument("--vocabulary", choices=("commands", "digits"), default="commands",
                   help="the 10 commands and other words as _unknown_, or the ten digits (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    out = Path(args.out)
    for split, voices in (("train", args.train_voices), ("test", args.test_voices)):
        print(f"{split}: {write_split(out, split, voices, args.seed, args.vocabulary)} clips in {out}")


if __name__ == "__main__":
    main()
