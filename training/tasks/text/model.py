"""The text model: embedding -> (bi)GRU/LSTM over packed sequences -> masked pooling -> dropout -> linear."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from training.tasks.text.config import TextConfig
from training.tasks.text.tokenizer import PAD_ID


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
        """One vector per text from the states of its real tokens only (padding is masked out)."""
        m = mask.unsqueeze(-1)
        if self.pooling == "mean":
            return (out * m).sum(1) / m.sum(1).clamp(min=1)
        if self.pooling == "max":
            return out.masked_fill(~m, float("-inf")).amax(1)
        scores = self.attention(out).squeeze(-1).float().masked_fill(~mask, float("-inf"))
        return (scores.softmax(1).unsqueeze(-1).to(out.dtype) * out).sum(1)


def build_model(config: TextConfig, num_labels: int, *, pretrained: bool = False) -> nn.Module:
    """The network of `config` with `num_labels` outputs (trained from scratch: `pretrained` is ignored)."""
    return TextClassifier(config, num_labels)
