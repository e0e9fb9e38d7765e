"""Older checkpoint layouts, read as today's: config.json format 1 becomes format 2 on read
(`python -m training migrate`, training/migrate.py, rewrites a folder as format 2 for good).

Format 1 (every checkpoint written before the typed record) recorded the validation rows as a sentence,
"train (held out 0.1, stratified)"; format 2 records them as data (config_record.Validation). Reading
that sentence back happens here, once, for format-1 files only: the seed and fraction come from the
run's recorded arguments where it recorded them, the rest from the sentence that format-1 code wrote
(training/data.py: `f"{train_split} (held out {val_fraction:g}" + (" by COLUMN)" or ", stratified)")`).

Reading a format-1 file changes nothing on disk and loads nothing: timm's keys, which take the network
to compute, are added by the migrate command.
"""

from __future__ import annotations

import re

from training.config_record import FORMAT_VERSION, RecordError

CARVED = re.compile(r"(?P<split>.+) \(held out (?P<fraction>[0-9.eE+-]+)(?:, stratified| by (?P<by>.+))\)")


def upgrade(data: dict) -> dict:
    """config.json's content in format 2: as it is when it already is, migrated when it is format 1."""
    version = data.get("format_version")
    if version == FORMAT_VERSION:
        return data
    if version != 1:
        raise RecordError(f"format_version {version!r} is not supported by this code (it reads versions 1 and "
                          f"{FORMAT_VERSION}). Retrain or update Triptych.")
    args = data.get("train_args") if isinstance(data.get("train_args"), dict) else {}
    dataset = data.get("dataset") if isinstance(data.get("dataset"), dict) else {}
    return {**data, "format_version": FORMAT_VERSION, "dataset": dataset_v2(dataset, args)}


def dataset_v2(dataset: dict, args: dict) -> dict:
    """A format-1 dataset entry with its `validation` as data (each source's too, on a run of several)."""
    sources = dataset.get("sources")
    if isinstance(sources, list) and sources:
        out = {**dataset, "sources": [dataset_v2(s, args) if isinstance(s, dict) else s for s in sources]}
        out["validation"] = {"kind": "sources", "split": str(dataset.get("train_split", "train"))}
        return out
    return {**dataset, "validation": validation_v2(str(dataset.get("validation_split") or "validation"), args)}


def validation_v2(sentence: str, args: dict) -> dict:
    """The format-1 sentence of a validation split as a Validation's JSON."""
    carved = CARVED.fullmatch(sentence)
    if carved is None:
        return {"kind": "split", "split": sentence}
    fraction = args.get("val_fraction")
    if not isinstance(fraction, (int, float)) or f"{fraction:g}" != carved["fraction"]:
        fraction = float(carved["fraction"])        # the run recorded no fraction, or another one
    seed = args.get("seed", 0)
    return {"kind": "carved", "split": carved["split"], "fraction": fraction, "by": carved["by"],
            "seed": seed if isinstance(seed, int) else 0}
