"""Word importances by occlusion: each word is removed in turn and the drop in the predicted label's
probability is its score. A word is the whole group of WordPiece tokens the tokenizer made from one piece
of the text (e.g. "un ##happi ##ness"); an encoder's [CLS] and [SEP] stay in every variant and are never
shown as words."""

from __future__ import annotations

import torch
from torch import nn

from training.tasks.text.config import TextConfig
from training.tasks.text.tokenizer import PAD_ID, UNK_ID, Encoded, clean, encode_text, tokenize, unk_id

EXPLANATION_METHOD = "occlusion"


def word_spans(encoded: Encoded) -> list[tuple[int, int, list[int]]]:
    """(start, end, positions in `encoded.ids`) of each word the model read, as offsets into the cleaned
    text; the positions of a word are all its WordPiece tokens."""
    spans: dict[int, list] = {}
    for pos in range(len(encoded.text_ids)):
        word = encoded.encoding.word_ids[pos]
        start, end = (encoded.start + o for o in encoded.encoding.offsets[pos])
        if word not in spans:
            spans[word] = [start, end, []]
        spans[word][1] = max(spans[word][1], end)
        spans[word][2].append(encoded.lead + pos)
    return [tuple(s) for s in spans.values()]


def unknown_words(config: TextConfig, text) -> tuple[list[str], int]:
    """(the words of `text` the model read as nothing but [UNK], how many words it read). WordPiece spells
    any word from its pieces; a word becomes [UNK] when it holds a character its vocabulary has no piece
    for (an emoji, another script)."""
    text = clean(text)
    encoded = encode_text(config, text)
    unknown = unk_id(config)
    spans = word_spans(encoded)
    return [text[start:end] for start, end, positions in spans
            if all(encoded.ids[p] == unknown for p in positions)], len(spans)


def pad_batch(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> (ids right-padded with [PAD], lengths), as the training cache lays them out."""
    lengths = torch.tensor([len(r) for r in rows])
    ids = torch.full((len(rows), int(lengths.max())), PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return ids, lengths


@torch.inference_mode()
def probabilities(model: nn.Module, rows: list[list[int]], batch_size: int = 64) -> torch.Tensor:
    """Label probabilities (len(rows), num_labels) on the CPU, in batches on the model's device."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(rows), batch_size):
        ids, lengths = pad_batch(rows[start:start + batch_size])
        out.append(model(ids.to(device), lengths.to(device)).float().softmax(-1).cpu())
    return torch.cat(out)


def occlusion_scores(model: nn.Module, ids: list[int], words: list[list[int]], target: int) -> list[float]:
    """For each word, how much the `target` probability falls when that word's tokens are removed."""
    variants = []
    for positions in words:
        drop = set(positions)
        variants.append([t for i, t in enumerate(ids) if i not in drop] or [UNK_ID])
    probs = probabilities(model, [ids] + variants)[:, target]
    return (probs[0] - probs[1:]).tolist()


def explain(model: nn.Module, config: TextConfig, text: str, target: int | None = None) -> list[tuple[str, float | None]]:
    """Word importances for gr.HighlightedText: (piece of `text`, score in [-1, 1] or None for gaps).

    Occlusion: each word is removed in turn and the drop in the predicted label's probability is its score
    (positive: the word pushed towards the label; negative: away from it), scaled so the strongest is +-1.
    Covers the part of the text the model read; `target` defaults to the predicted label.
    """
    tokenize(config, text)   # the same checks and messages as a prediction
    text = clean(text)
    encoded = encode_text(config, text)
    model.eval()
    if target is None:
        target = int(probabilities(model, [encoded.ids]).argmax(-1))
    spans = word_spans(encoded)
    scores = occlusion_scores(model, encoded.ids, [s[2] for s in spans], target)
    top = max((abs(s) for s in scores), default=0.0) or 1.0
    pieces, cursor = [], 0
    for (start, end, _), score in zip(spans, scores):
        if start > cursor:
            pieces.append((text[cursor:start], None))
        pieces.append((text[start:end], round(score / top, 4)))
        cursor = end
    return pieces
