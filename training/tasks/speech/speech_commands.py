"""The Speech Commands adapter: the Hub's 35 words become the benchmark's 12-class keyword layout."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from training.tasks.speech.config import INPUT_COLUMNS, SpeechConfig

# Speech Commands' 12-class keyword layout: ten commands, silence and every other word as unknown.
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
KEYWORD_LABELS = (*COMMANDS, SILENCE, UNKNOWN)


def adapt_dataset(raw, config: SpeechConfig, seed: int):
    """Map the full Speech Commands vocabulary (35 words and `_silence_`, as on the Hub) to the 12-class
    keyword layout of its benchmark: the ten commands, `_silence_`, and every other word as `_unknown_`.

    Datasets that already have 12 labels (the canonical test set), or any other labels, pass unchanged,
    as does everything with --keep-all-words.
    """
    if config.keep_all_words:
        return raw
    out = {}
    for split, ds in raw.items():
        names = label_feature_names(ds)
        if names is None or set(names) <= set(KEYWORD_LABELS) or not set(COMMANDS) <= set(names):
            return raw
        ds = chunk_background_noise(ds, names, config.clip_seconds)
        out[split] = to_keywords(ds, names, seed)
    import datasets
    return datasets.DatasetDict(out)


def label_feature_names(ds) -> list[str] | None:
    feature = ds.features.get("label")
    return list(feature.names) if hasattr(feature, "names") else None


def to_keywords(ds, names: list[str], seed: int):
    """Relabel to KEYWORD_LABELS; keep as many `_unknown_` rows as the largest command has, so that
    unknown words do not outnumber the commands nine to one (the benchmark's sets are balanced)."""
    import datasets

    new = [KEYWORD_LABELS.index(n) if n in KEYWORD_LABELS else KEYWORD_LABELS.index(UNKNOWN) for n in names]
    ids = np.array([new[i] for i in ds["label"]], dtype=np.int64)
    ds = ds.remove_columns("label").add_column("label", ids.tolist(),
                                               feature=datasets.ClassLabel(names=list(KEYWORD_LABELS)))
    unknown = np.flatnonzero(ids == KEYWORD_LABELS.index(UNKNOWN))
    largest = max(int((ids == i).sum()) for i in range(len(COMMANDS)))
    if len(unknown) > largest > 0:
        drop = np.random.default_rng(seed).permutation(unknown)[largest:]
        keep = np.setdiff1d(np.arange(len(ids)), drop)
        ds = ds.select(keep.tolist())
    return ds


def chunk_background_noise(ds, names: list[str], clip_seconds: float):
    """The Hub's training `_silence_` rows are six background recordings of a minute or more; cut each
    into clip-length pieces, as the benchmark does, so that silence is not six examples among thousands."""
    import datasets
    import soundfile as sf

    silence = names.index(SILENCE) if SILENCE in names else None
    audio_col = next((c for c in INPUT_COLUMNS if c in ds.column_names), None)
    if silence is None or audio_col is None:
        return ds
    ds = ds.cast_column(audio_col, datasets.Audio(decode=False))
    rows = [i for i, y in enumerate(ds["label"]) if y == silence]
    pieces = {c: [] for c in ds.column_names}
    long_rows = []
    for i in rows:
        row = ds[i]
        try:
            clip, rate = sf.read(io.BytesIO(row[audio_col]["bytes"]), dtype="float32", always_2d=True)
        except Exception:   # an unreadable row is left as it is; encode() will name the problem
            continue
        size = int(clip_seconds * rate)
        if len(clip) < 2 * size:
            continue
        long_rows.append(i)
        for k, s in enumerate(range(0, len(clip) - size + 1, size)):
            buf = io.BytesIO()
            sf.write(buf, clip[s:s + size], rate, format="WAV", subtype="PCM_16")
            source = row[audio_col].get("path") or f"noise{i}"
            for c in ds.column_names:
                value = {"bytes": buf.getvalue(), "path": f"{source}#{k}"} if c == audio_col else row[c]
                if c == "speaker_id" and not value:   # pieces of one recording stay one group
                    value = Path(source).stem
                pieces[c].append(value)
    if not long_rows:
        return ds
    kept = ds.select(sorted(set(range(len(ds))) - set(long_rows)))
    extra = datasets.Dataset.from_dict(pieces, features=kept.features)
    return datasets.concatenate_datasets([kept, extra])
