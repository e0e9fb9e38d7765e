"""From text to the model's input: token ids for the training cache, batches (with token dropout when
training), and `prepare` for one demo input. The cache right-pads rows with 0, the [PAD] id; `make_batch`
trims each batch to its own longest row; the model packs the sequences, so padding never changes a
prediction."""

from __future__ import annotations

import torch

from training.tasks.text.config import TextConfig
from training.tasks.text.tokenizer import PAD_ID, UNK_ID, encode_text, tokenize


def encode(config: TextConfig, raw) -> torch.Tensor:
    """One dataset text -> int32 token ids; a blank row becomes a single [UNK] rather than an error."""
    return torch.tensor(encode_text(config, raw).ids or [UNK_ID], dtype=torch.int32)


def prepare(config: TextConfig, raw) -> tuple[torch.Tensor, torch.Tensor]:
    """One user text -> (ids (1, n) int64, lengths (1,)); raises `InputError` for blank text."""
    ids, _ = tokenize(config, raw)
    return torch.tensor([ids], dtype=torch.long), torch.tensor([len(ids)], dtype=torch.long)


def make_batch(config: TextConfig, data: torch.Tensor, lengths: torch.Tensor, *, train: bool,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Trim the cache rows to the batch's own longest text; at train time, replace some tokens by [UNK]."""
    ids = data[:, : int(lengths.max())].long()
    if train and config.token_dropout > 0:
        drop = (torch.rand(ids.shape, generator=generator) < config.token_dropout).to(ids.device)
        ids = torch.where(drop & (ids != PAD_ID), torch.full_like(ids, UNK_ID), ids)
    return ids, lengths
