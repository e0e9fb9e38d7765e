"""Rebuild the demo's examples from the validation rows of the shipped checkpoints' own training runs.

    python demo/examples/build_examples.py --data ../shared/data

Each checkpoint's validation split is rebuilt from the arguments its config.json recorded (same carved
fraction, seed and speaker grouping), so no example was ever a training row. Per label it takes the first
rows that fit the rule below, with no look at what the model predicts for them: images, 3 per label,
and speech, 2 clips per command or digit, the first in a fixed shuffle of the validation rows (seed 0);
text, the first 2 sentences of 20 to 110 characters in the split's own order. Images are saved as PNG
(the dataset's own pixels), clips as 16-bit WAV at the dataset's sample rate.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

IMAGES_PER_LABEL = 3
CLIPS_PER_LABEL = 2
TEXTS_PER_LABEL = 2
TEXT_CHARS = (20, 110)


def validation_rows(checkpoint: Path, data: Path):
    """(labels, input column, validation rows, their label ids) of the run that trained `checkpoint`."""
    from training import checkpoint as ckpt
    from training.evaluate import recorded_splits

    config = ckpt.read_config(checkpoint)
    dataset = data / Path(config["train_args"]["dataset"]).name
    splits = recorded_splits(config, str(dataset), where=checkpoint)
    return splits.labels, splits.input_column, splits.val, [int(y) for y in splits.val_labels]


def first_per_label(ids: list[int], count: int, keep=lambda i: True, shuffle: bool = False) -> list[int]:
    """The first `count` rows of each label, in row order or in a fixed shuffle of the rows (seed 0): a
    split can be ordered by label or speaker, and its first speakers need not be typical ones."""
    import torch

    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0)).tolist() if shuffle else range(len(ids))
    chosen, seen = [], {}
    for i in order:
        y = ids[i]
        if seen.get(y, 0) < count and keep(i):
            chosen.append(i)
            seen[y] = seen.get(y, 0) + 1
    return chosen


def build_images(data: Path, out: Path) -> list[tuple[str, str]]:
    from training.tasks.image import load_image

    labels, column, rows, ids = validation_rows(ROOT / "checkpoints" / "image" / "cifar10", data)
    written, counts = [], {}
    for i in first_per_label(ids, IMAGES_PER_LABEL, shuffle=True):
        label = labels[ids[i]]
        counts[label] = counts.get(label, 0) + 1
        path = out / f"{label}-{counts[label]}.png"
        load_image(rows[i][column]).save(path, optimize=True)
        written.append((path.name, f"validation row {i}"))
    return written


def build_speech(data: Path, out: Path) -> list[tuple[str, str]]:
    import soundfile as sf

    written = []
    for name, prefix in (("speech_commands", "command"), ("fsdd", "digit")):
        labels, column, rows, ids = validation_rows(ROOT / "checkpoints" / "speech" / name, data)
        speakers = next((c for c in ("speaker_id", "speaker") if c in rows.column_names), None)
        counts = {}
        for i in first_per_label(ids, CLIPS_PER_LABEL, shuffle=True):
            label = labels[ids[i]]
            counts[label] = counts.get(label, 0) + 1
            audio = rows[i][column]
            samples, rate = sf.read(io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio["path"])
            path = out / f"{prefix}-{label}-{counts[label]}.wav"
            sf.write(path, samples, rate, subtype="PCM_16")
            speaker = f", speaker `{rows[i][speakers]}`" if speakers else ""
            written.append((path.name, f"{name} `{label}/{Path(audio.get('path') or '?').name}`{speaker}, {rate} Hz"))
    return written


def build_text(data: Path, out: Path) -> list[tuple[str, str]]:
    labels, column, rows, ids = validation_rows(ROOT / "checkpoints" / "text" / "emotion", data)
    texts = rows[column]
    lo, hi = TEXT_CHARS
    chosen = first_per_label(ids, TEXTS_PER_LABEL, keep=lambda i: lo <= len(texts[i]) <= hi)
    chosen.sort(key=lambda i: (ids[i], i))
    lines = [json.dumps({"text": texts[i], "label": labels[ids[i]]}) for i in chosen]
    (out / "emotion_validation.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [("emotion_validation.jsonl", line) for line in lines]


def write_sources(out: Path, written: list[tuple[str, str]]) -> None:
    """Replace the table of files and sources at the end of out/README.md (after its SOURCES marker)."""
    readme = out / "README.md"
    head = readme.read_text(encoding="utf-8").split(SOURCES)[0]
    rows = "\n".join(f"| `{name}` | {source} |" for name, source in written)
    readme.write_text(f"{head}{SOURCES}\n\n| file | source |\n|---|---|\n{rows}\n", encoding="utf-8")


SOURCES = "<!-- files: written by build_examples.py -->"
PATTERNS = {"image": "*.png", "speech": "*.wav", "text": "*.jsonl"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                   help="folder holding cifar10/, emotion/, speech_commands/ and fsdd/ (default: %(default)s)")
    p.add_argument("--only", choices=("image", "speech", "text"), default=None)
    args = p.parse_args(argv)
    for kind, build in (("image", build_images), ("speech", build_speech), ("text", build_text)):
        if args.only in (None, kind):
            out = HERE / kind
            before = set(out.glob(PATTERNS[kind]))
            written = build(args.data, out)
            for stale in before - {out / name for name, _ in written}:
                stale.unlink()
            if kind != "text":
                write_sources(out, written)
            for name, source in written:
                print(f"{kind}: {name} <- {source}")


if __name__ == "__main__":
    main()
