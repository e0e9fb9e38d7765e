"""Speech Commands' spoken digits as a dataset of their own, labelled "0" to "9" as the Free Spoken Digit
Dataset is, so that a digit model can train on both (`--dataset fsdd --dataset <this>`).

    python recipes/speech_commands_digits.py --out .data/speech_commands_digits [--data ../shared/data] [--per-digit N]

The staged `speech_commands_more/v0.01` keeps each `_unknown_` clip's word in its path
("zero/<speaker>_nohash_0.flac"): its clips of zero to nine, from hundreds of speakers (about 565 each of
zero, one, five and eight; about 20 of each other digit), become rows with label "0" to "9" and their
speaker (named as FSDD names its column, for --group-column speaker). `--per-digit N` keeps at most N
clips of each digit, drawn with a fixed seed (recipes/speech_fsdd.sh takes 120: 599 clips from 343
speakers, a quarter of an epoch's rows beside FSDD's 2,000 rather than half of them). CC BY 4.0, Pete Warden / Google (recorded under the Hub id google/speech_commands).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def main(argv=None) -> None:
    import datasets

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder to write (Hub layout: data/train-00000-of-00001.parquet)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the staged datasets' folder")
    p.add_argument("--per-digit", type=int, default=None, help="at most this many clips of each digit (default: all)")
    args = p.parse_args(argv)
    ds = datasets.load_dataset(str(args.data / "speech_commands_more" / "v0.01"), split="train")
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    words = [a["path"].split("/")[0] for a in ds["audio"]]
    rows = [i for i, w in enumerate(words) if w in DIGITS]
    if args.per_digit is not None:
        random.Random(0).shuffle(rows)
        kept: dict[str, list[int]] = {}
        for i in rows:
            chosen = kept.setdefault(words[i], [])
            if len(chosen) < args.per_digit:
                chosen.append(i)
        rows = sorted(i for clips in kept.values() for i in clips)
    digits = ds.select(rows)
    labels = [DIGITS.index(words[i]) for i in rows]
    out = datasets.Dataset.from_dict(
        {"audio": digits["audio"], "label": labels, "speaker": digits["speaker_id"]},
        features=datasets.Features({"audio": datasets.Audio(decode=False),
                                    "label": datasets.ClassLabel(names=[str(k) for k in range(10)]),
                                    "speaker": datasets.Value("string")}))
    (Path(args.out) / "data").mkdir(parents=True, exist_ok=True)
    out.to_parquet(str(Path(args.out) / "data" / "train-00000-of-00001.parquet"))
    print(f"{len(out)} clips of {len(set(out['speaker']))} speakers in {args.out}")


if __name__ == "__main__":
    main()
