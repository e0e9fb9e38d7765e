"""From text to the model's input: token ids for the training cache, batches (with token dropout when
training), and `prepare` for one demo input. The cache right-pads rows with 0, the [PAD] id of both
tokenizers; `make_batch` trims each batch to its own longest text; the models mask padding out (the rnn
packs its sequences, an encoder masks its attention), so padding never changes a prediction."""

from __future__ import annotations

import torch

from training.tasks.text.config import TextConfig
from training.tasks.text.tokenizer import PAD_ID, UNK_ID, encode_text, special_ids, tokenize


def encode(config: TextConfig, raw) -> torch.Tensor:
    """One dataset text -> int32 token ids; a blank row becomes a single [UNK] (the rnn) or [CLS] [SEP] (an
    encoder) rather than an error."""
    return torch.tensor(encode_text(config, raw).ids or [UNK_ID], dtype=torch.int32)


def prepare(config: TextConfig, raw) -> tuple[torch.Tensor, torch.Tensor]:
    """One user text -> (ids (1, n) int64, lengths (1,)); raises `InputError` for blank text."""
    ids, _ = tokenize(config, raw)
    return torch.tensor([ids], dtype=torch.long), torch.tensor([len(ids)], dtype=torch.long)


def make_batch(config: TextConfig, data: torch.Tensor, lengths: torch.Tensor, *, train: bool,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Trim the cache rows to the batch's own longest text; at train time, replace some of the text's tokens
    (never padding, [CLS] or [SEP]) by [UNK]."""
    ids = data[:, : int(lengths.max())].long()
    if train and config.token_dropout > 0:
        specials = special_ids(config)
        drop = (torch.rand(ids.shape, generator=generator) < config.token_dropout).to(ids.device)
        kept = [i for token, i in specials.items() if token != "[UNK]" and i != PAD_ID]
        text = (ids != PAD_ID) & ~torch.isin(ids, torch.tensor(kept, device=ids.device)) if kept else ids != PAD_ID
        ids = torch.where(drop & text, torch.full_like(ids, specials["[UNK]"]), ids)
    return ids, lengths
