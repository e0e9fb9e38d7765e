"""The encoder models as ONNX sees them: the same weights and computation as `EncoderClassifier`, with
each BERT layer written out as its operators.

torch's `nn.TransformerEncoderLayer` traces with the example's sequence length baked into its attention
reshapes (the TorchScript exporter), and its GRU head unrolls to a fixed length under the dynamo exporter.
Written out here, the attention reshapes by the number of heads alone, so the TorchScript exporter keeps
the batch and the tokens dynamic and exports the GRU head as ONNX's GRU, as it does the rnn's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bert_layer(layer: nn.TransformerEncoderLayer, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
    """One post-LayerNorm encoder layer, as `layer` computes it in eval mode; `attend` (batch, 1, 1, tokens)
    is True where a key is a real token."""
    attention = layer.self_attn
    heads = attention.num_heads
    q, k, v = F.linear(x, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))   # (batch, heads, tokens, d)
    mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=attend).transpose(1, 2).flatten(2)
    x = layer.norm1(x + attention.out_proj(mixed))
    return layer.norm2(x + layer.linear2(F.gelu(layer.linear1(x))))


class ExportEncoderClassifier(nn.Module):
    """(ids, lengths) -> logits with `model`'s (an EncoderClassifier's) weights, for the ONNX exporter."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        x = self.model.encoder.embeddings(ids)
        for layer in self.model.encoder.layers:
            x = bert_layer(layer, x, mask[:, None, None, :])
        return self.model.head(x, mask, lengths)
