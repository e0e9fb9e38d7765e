"""Decode a dataset split once into tensors, and keep the result on disk for the next run.

Training reads the same images, clips or sentences every epoch; decoding them each time would cost more
than the training step on small models. `encode_split` runs the task's `encode` over every row (in worker
processes when asked), stacks the results into one tensor (padding variable-length rows, whose true
lengths it keeps), and stores that as a safetensors file keyed by the dataset's fingerprint, the column
and the task's preprocessing, so a changed dataset or setting never reuses a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

CACHE_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("TRIPTYCH_CACHE", Path.home() / ".cache" / "triptych"))


def cache_key(ds, column: str, task_name: str, preprocessing: dict) -> str | None:
    fingerprint = getattr(ds, "_fingerprint", None)
    if not fingerprint:
        return None
    blob = json.dumps([CACHE_VERSION, task_name, fingerprint, column, preprocessing], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class _Column(torch.utils.data.Dataset):
    def __init__(self, ds, column):
        self.ds, self.column = ds, column

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i][self.column]


def _encode_many(encode, config, raws):
    return stack_rows([encode(config, raw) for raw in raws])


def stack_rows(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack equal-shape rows; right-pad rows of different lengths (first dim) with zeros."""
    lengths = torch.tensor([r.shape[0] if r.dim() else 1 for r in rows], dtype=torch.long)
    if all(r.shape == rows[0].shape for r in rows):
        return torch.stack(rows), lengths
    longest = int(lengths.max())
    out = rows[0].new_zeros((len(rows), longest, *rows[0].shape[1:]))
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out, lengths


def concat_padded(chunks: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate chunks along rows, right-padding the second dimension to the longest chunk."""
    if all(c.shape[1:] == chunks[0].shape[1:] for c in chunks):
        return torch.cat(chunks)
    longest = max(c.shape[1] for c in chunks)
    return torch.cat([torch.nn.functional.pad(c, (0, 0) * (c.dim() - 2) + (0, longest - c.shape[1])) for c in chunks])


def encode_split(task, config, ds, column: str, *, workers: int = 0, desc: str = "decode",
                 use_cache: bool = True, show_progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(data, lengths) for every row of `ds[column]`, through `task.encode`; cached on disk by content."""
    from tqdm.auto import tqdm

    key = cache_key(ds, column, task.name, task.preprocessing_record(config)) if use_cache else None
    path = cache_dir() / f"{key}.safetensors" if key else None
    if path is not None and path.is_file():
        try:
            tensors = load_file(path)
            if len(tensors["lengths"]) == len(ds):
                return tensors["data"], tensors["lengths"]
        except Exception:
            pass   # unreadable cache: decode again and overwrite it
    loader = torch.utils.data.DataLoader(
        _Column(ds, column), batch_size=64, num_workers=workers, collate_fn=partial(_encode_many, task.encode, config))
    chunks, lengths = [], []
    for data, length in tqdm(loader, desc=desc, unit="batch", disable=not show_progress, leave=False):
        # Copy out of the worker's shared memory at once: holding thousands of shared tensors would
        # hold as many open file descriptors.
        chunks.append(data.clone())
        lengths.append(length.clone())
    data, lengths = concat_padded(chunks), torch.cat(lengths)
    if path is not None:
        from training.checkpoint import atomic_write
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_file({"data": data.contiguous(), "lengths": lengths}, tmp))
    return data, lengths
