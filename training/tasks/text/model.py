"""The text networks: "rnn", embedding -> (bi)GRU/LSTM over packed sequences -> masked pooling -> linear;
and the encoder models, the pretrained MiniLM-L6 encoder -> a GRU head or a pooled linear head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from training.tasks.text.config import TextConfig
from training.tasks.text.tokenizer import PAD_ID


def masked_pool(out: torch.Tensor, mask: torch.Tensor, pooling: str, attention: nn.Module | None) -> torch.Tensor:
    """One vector per text from the states of its real tokens only (padding is masked out)."""
    m = mask.unsqueeze(-1)
    if pooling == "mean":
        return (out * m).sum(1) / m.sum(1).clamp(min=1)
    if pooling == "max":
        return out.masked_fill(~m, float("-inf")).amax(1)
    scores = attention(out).squeeze(-1).float().masked_fill(~mask, float("-inf"))
    return (scores.softmax(1).unsqueeze(-1).to(out.dtype) * out).sum(1)


class TextClassifier(nn.Module):
    """Embedding -> (bi)GRU/LSTM over packed sequences -> masked pooling -> dropout -> linear."""

    def __init__(self, config: TextConfig, num_labels: int):
        super().__init__()
        self.pooling = config.pooling
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=PAD_ID)
        rnn = nn.GRU if config.cell == "gru" else nn.LSTM
        self.rnn = rnn(config.embedding_size, config.hidden_size, num_layers=config.layers, batch_first=True,
                       bidirectional=config.bidirectional, dropout=config.dropout if config.layers > 1 else 0.0)
        width = config.hidden_size * (2 if config.bidirectional else 1)
        self.attention = nn.Linear(width, 1) if config.pooling == "attention" else None
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(width, num_labels)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(ids))
        packed = pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        # The recurrence runs in float32 even under the engine's bf16 autocast: reduced-precision RNN kernels
        # differ between backends, and this model is small enough that float32 costs little.
        with torch.autocast(device_type=ids.device.type, enabled=False):
            out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        return self.classifier(self.dropout(self.pool(out, mask)))

    def pool(self, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_pool(out, mask, self.pooling, self.attention)


def reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row's first `length` steps in reverse order, its padding left in place: a backward recurrence
    over this reads the real tokens first, so padding never reaches their states. Index arithmetic only
    (no packing, no Python branch on values), so the forward stays exportable."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    index = lengths[:, None] - 1 - steps
    index = torch.where(index >= 0, index, steps)
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class RecurrentHead(nn.Module):
    """Token states -> GRU forward (and, when bidirectional, backward within each text's length) -> masked
    pooling -> dropout -> linear."""

    def __init__(self, width: int, config: TextConfig, num_labels: int):
        super().__init__()
        self.pooling, self.bidirectional = config.pooling, config.bidirectional
        self.forward_rnn = nn.GRU(width, config.hidden_size, batch_first=True)
        self.backward_rnn = nn.GRU(width, config.hidden_size, batch_first=True) if config.bidirectional else None
        out = config.hidden_size * (2 if config.bidirectional else 1)
        self.attention = nn.Linear(out, 1) if config.pooling == "attention" else None
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(out, num_labels)

    def forward(self, states: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=states.device.type, enabled=False):   # float32, as the rnn's
            states = states.float()
            out, _ = self.forward_rnn(states)
            if self.backward_rnn is not None:
                back, _ = self.backward_rnn(reverse_within(states, lengths))
                out = torch.cat([out, reverse_within(back, lengths)], -1)
        return self.classifier(self.dropout(masked_pool(out, mask, self.pooling, self.attention)))


class PooledHead(nn.Module):
    """Token states -> masked pooling -> dropout -> linear."""

    def __init__(self, width: int, config: TextConfig, num_labels: int):
        super().__init__()
        self.pooling = config.pooling
        self.attention = nn.Linear(width, 1) if config.pooling == "attention" else None
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(width, num_labels)

    def forward(self, states: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(masked_pool(states, mask, self.pooling, self.attention)))


class EncoderClassifier(nn.Module):
    """[CLS] text [SEP] ids -> the pretrained encoder's token states -> a head (`head`: what trains afresh)."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        return self.head(self.encoder(ids, ~mask), mask, lengths)


def build_model(config: TextConfig, num_labels: int, *, pretrained: bool = False) -> nn.Module:
    """The network of `config` with `num_labels` outputs. An encoder model's encoder always comes from the
    installed package (`pretrained` or not: its frozen part is never saved, and a checkpoint's weights
    replace the rest); the rnn is trained from scratch. `storage_dtype` tells the checkpoint how to store
    the weights (--weights-dtype); loading casts them back to float32."""
    if not config.uses_encoder:
        model = TextClassifier(config, num_labels)
    else:
        from training.tasks.text import encoder

        body = encoder.build_encoder(config.frozen_layers, config.train_embeddings, config.encoder_weights)
        head = (RecurrentHead if config.architecture == "minilm-gru" else PooledHead)(encoder.WIDTH, config, num_labels)
        model = EncoderClassifier(body, head)
    if config.weights_dtype != "float32":
        model.storage_dtype = getattr(torch, config.weights_dtype)
    return model
