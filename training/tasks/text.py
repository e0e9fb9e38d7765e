"""Text classification: the tokenizer, the recurrent model and the input checks, defined once.

`fit` trains a WordPiece tokenizer (Hugging Face `tokenizers`) on the training split; it is saved as
`tokenizer.json` beside the weights, so the demo splits text exactly as training did. Training encodes every
row once into token ids (the cache right-pads them with 0, the [PAD] id); `make_batch` trims each batch to
its own longest row; the model packs the sequences, so padding never changes a prediction.

The demo calls `tokenize` (ids + whether the text was cut), `prepare` (a batch of one) and `explain`
(word importances by occlusion). Any Python string is accepted: lone surrogates become U+FFFD, control
characters become spaces, and the string is cut to a character budget before tokenising, so 100,000
characters cost no more than a few thousand.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from training.tasks import config_from_fields

NAME = "text"
INPUT_COLUMNS = ("text", "sentence", "content")
INPUT_FLAG = "--text-column"
CELLS = ("gru", "lstm")
POOLINGS = ("mean", "max", "attention")
TOKENIZER_NAME = "tokenizer.json"
# [PAD] must be id 0: the training cache right-pads rows with zeros (training/cache.py).
PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
# Characters read per allowed token before tokenising. English averages about 6 characters per WordPiece
# token; 64 leaves room for long words and whitespace runs while bounding the work on huge inputs.
CHARS_PER_TOKEN = 64
_SURROGATES = re.compile("[\ud800-\udfff]")

# --init-from: settings that only change training (this run's arguments), and those `fit` derives from data.
TRAIN_FIELDS = ("dropout", "token_dropout")
FITTED_FIELDS = ("vocab_size",)

# Engine defaults: AdamW at 3e-3 with warm-up and linear decay trains a small bi-GRU in a few epochs;
# clipping the gradient norm at 1 is the usual guard against exploding recurrent gradients; class weights
# on because text datasets are often skewed (dair-ai/emotion: 34% joy, 4% surprise), which costs little
# accuracy and lifts macro-F1 (--no-class-weights turns them off).
DEFAULTS = dict(epochs=8, batch_size=64, lr=3e-3, weight_decay=0.01, optimizer="adamw", label_smoothing=0.0,
                warmup_fraction=0.05, grad_clip=1.0, class_weights=True)


class TextInputError(ValueError):
    """A text that cannot be classified; the message says why in words."""


@dataclass
class TextConfig:
    architecture: str = "rnn"
    vocab_size: int = 12000          # after `fit`: the trained tokenizer's actual size
    max_tokens: int = 128
    embedding_size: int = 128
    hidden_size: int = 160
    layers: int = 1
    cell: str = "gru"
    bidirectional: bool = True
    dropout: float = 0.3
    pooling: str = "max"
    token_dropout: float = 0.1       # train time: share of tokens replaced by [UNK], for robustness to new words

    def __post_init__(self):
        self.tokenizer = None        # tokenizers.Tokenizer; not a field, so config.json stays plain JSON


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("text")
    g.add_argument("--text-column", default=None, help="input column (default: auto, text, sentence or content)")
    g.add_argument("--vocab-size", type=int, default=12000, help="WordPiece vocabulary size (default: %(default)s)")
    g.add_argument("--max-tokens", type=int, default=128,
                   help="longer texts are cut to this many tokens (default: %(default)s)")
    g.add_argument("--embedding-size", type=int, default=128, help="(default: %(default)s)")
    g.add_argument("--hidden-size", type=int, default=160, help="recurrent units per direction (default: %(default)s)")
    g.add_argument("--layers", type=int, default=1, help="stacked recurrent layers (default: %(default)s)")
    g.add_argument("--cell", choices=CELLS, default="gru", help="(default: %(default)s)")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True,
                   help="read the text in both directions (default: %(default)s)")
    g.add_argument("--dropout", type=float, default=0.3, help="on embeddings, between layers and before the "
                   "classifier (default: %(default)s)")
    g.add_argument("--pooling", choices=POOLINGS, default="max",
                   help="how the per-token states become one vector (default: %(default)s)")
    g.add_argument("--token-dropout", type=float, default=0.1,
                   help="train time: share of tokens replaced by [UNK] (default: %(default)s)")


def config_from_args(args: argparse.Namespace) -> TextConfig:
    config = TextConfig(vocab_size=args.vocab_size, max_tokens=args.max_tokens, embedding_size=args.embedding_size,
                        hidden_size=args.hidden_size, layers=args.layers, cell=args.cell,
                        bidirectional=args.bidirectional, dropout=args.dropout, pooling=args.pooling,
                        token_dropout=args.token_dropout)
    check_config(config, flags=True)
    return config


def check_config(config: TextConfig, *, flags: bool = False) -> None:
    name = (lambda f: "--" + f.replace("_", "-")) if flags else (lambda f: f)
    for f in ("vocab_size", "max_tokens", "embedding_size", "hidden_size", "layers"):
        if getattr(config, f) < 1:
            raise ValueError(f"{name(f)} {getattr(config, f)}: must be at least 1.")
    if config.vocab_size < 3:
        raise ValueError(f"{name('vocab_size')} {config.vocab_size}: must be at least 3 ([PAD], [UNK] and a word).")
    for f in ("dropout", "token_dropout"):
        if not 0 <= getattr(config, f) < 1:
            raise ValueError(f"{name(f)} {getattr(config, f)}: must be in [0, 1).")
    if config.cell not in CELLS or config.pooling not in POOLINGS:
        raise ValueError(f"cell {config.cell!r} / pooling {config.pooling!r}: expected one of {CELLS} / {POOLINGS}.")


def config_from_dict(d: dict) -> TextConfig:
    config = config_from_fields(TextConfig, d)
    if config.architecture != "rnn":
        raise ValueError(f"unknown architecture {config.architecture!r}")
    check_config(config)
    return config


def config_to_dict(config: TextConfig) -> dict:
    return asdict(config)


def preprocessing(config: TextConfig) -> dict:
    out = {"tokenizer": "WordPiece (Hugging Face tokenizers), " + TOKENIZER_NAME,
           "normalizer": "control characters -> space, format characters removed, NFKC, lowercase",
           "max_tokens": config.max_tokens, "max_chars": char_limit(config), "pad_id": PAD_ID, "unk_id": UNK_ID}
    if config.tokenizer is not None:   # the tokenizer's digest keys the training cache: new vocab, new ids
        out["tokenizer_sha256"] = hashlib.sha256(config.tokenizer.to_str().encode()).hexdigest()[:16]
    return out


def adapt_dataset(raw, args):
    return raw


# --------------------------------------------------------------------------------------------- tokenizer

def new_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK, max_input_chars_per_word=100))
    # Control characters (NUL, escape codes) act as spaces; format characters (zero-width space, bidi
    # marks) are dropped, else WordPiece would turn the whole word that holds one into [UNK].
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(r"\p{Cc}"), " "), normalizers.Replace(Regex(r"\p{Cf}"), ""),
        normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()   # whitespace, then each punctuation mark
    tokenizer.decoder = decoders.WordPiece()                       # ids back to words, for people to read
    return tokenizer


def fit(config: TextConfig, train_inputs) -> TextConfig:
    """Train the WordPiece tokenizer on the training texts; `vocab_size` becomes its actual size. A
    tokenizer already loaded (--init-from) is kept: the embeddings it starts from are indexed by it."""
    from tokenizers import trainers

    if config.tokenizer is not None:
        return config

    tokenizer = new_tokenizer()
    # min_frequency 2: words seen once are spelled with sub-word pieces instead of taking a slot of their own.
    trainer = trainers.WordPieceTrainer(vocab_size=config.vocab_size, min_frequency=2, limit_alphabet=1000,
                                        special_tokens=[PAD, UNK], show_progress=False)
    tokenizer.train_from_iterator((clean(t) for t in train_inputs), trainer=trainer, length=len(train_inputs))
    if (tokenizer.token_to_id(PAD), tokenizer.token_to_id(UNK)) != (PAD_ID, UNK_ID):
        raise RuntimeError("tokenizer: [PAD] and [UNK] did not get ids 0 and 1")
    config.vocab_size = tokenizer.get_vocab_size()
    config.tokenizer = tokenizer
    return config


def save_extra(config: TextConfig, folder) -> None:
    from training.checkpoint import atomic_write

    atomic_write(Path(folder) / TOKENIZER_NAME, lambda tmp: config.tokenizer.save(tmp))


def load_extra(config: TextConfig, folder) -> None:
    from tokenizers import Tokenizer

    from training.checkpoint import CheckpointError

    path = Path(folder) / TOKENIZER_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing. A text checkpoint needs its tokenizer beside the weights.")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:   # tokenizers raises its own Exception type for malformed files
        raise CheckpointError(f"{path}: not a readable tokenizer file ({e}).") from None
    ids = (tokenizer.token_to_id(PAD), tokenizer.token_to_id(UNK))
    if ids != (PAD_ID, UNK_ID) or tokenizer.get_vocab_size() > config.vocab_size:
        raise CheckpointError(f"{path}: does not fit the model in config.json (vocabulary of "
                              f"{tokenizer.get_vocab_size()} vs {config.vocab_size}, [PAD]/[UNK] ids {ids}).")
    config.tokenizer = tokenizer


# -------------------------------------------------------------------------------------------- text input

def clean(text) -> str:
    """Any value to a string the tokenizer accepts: None -> "", lone surrogates -> U+FFFD."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    return _SURROGATES.sub("\ufffd", text)


def char_limit(config: TextConfig) -> int:
    return config.max_tokens * CHARS_PER_TOKEN


class Encoded(NamedTuple):
    ids: list[int]        # the tokens the model reads: at most max_tokens
    truncated: bool       # whether any of the text was left unread
    encoding: object      # the tokenizers.Encoding, for word offsets
    start: int            # its offsets count from this character of the cleaned text


def encode_text(config: TextConfig, text) -> Encoded:
    """Any text -> the tokens the model reads. Leading whitespace is skipped before the character budget
    is applied, so a long run of spaces cannot push the words out of it."""
    text = clean(text)
    start = len(text) - len(text.lstrip())
    limit = char_limit(config)
    encoding = config.tokenizer.encode(text[start:start + limit], add_special_tokens=False)
    ids = encoding.ids[: config.max_tokens]
    return Encoded(ids, len(text) - start > limit or len(encoding.ids) > len(ids), encoding, start)


def tokenize(config: TextConfig, text) -> tuple[list[int], bool]:
    """(token ids, truncated) for one user text; empty or blank text raises `TextInputError`."""
    if text is not None and not isinstance(text, str):
        raise TextInputError(f"Expected text, got {type(text).__name__}.")
    if not text:
        raise TextInputError("The text is empty. Please type a sentence to classify.")
    encoded = encode_text(config, text)
    if not encoded.ids:
        raise TextInputError("The text has only spaces or invisible control characters. Please type a sentence "
                             "to classify.")
    return encoded.ids, encoded.truncated


def encode(config: TextConfig, raw) -> torch.Tensor:
    """One dataset text -> int32 token ids; a blank row becomes a single [UNK] rather than an error."""
    return torch.tensor(encode_text(config, raw).ids or [UNK_ID], dtype=torch.int32)


def prepare(config: TextConfig, raw) -> tuple[torch.Tensor, torch.Tensor]:
    """One user text -> (ids (1, n) int64, lengths (1,)); raises `TextInputError` for blank text."""
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


# ------------------------------------------------------------------------------------------------- model

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


# ----------------------------------------------------------------------------------------- explanation

EXPLANATION_METHOD = "occlusion"


def word_spans(encoded: Encoded) -> list[tuple[int, int, list[int]]]:
    """(start, end, token positions) of each word the model read, as offsets into the cleaned text."""
    spans: dict[int, list] = {}
    for pos in range(len(encoded.ids)):
        word = encoded.encoding.word_ids[pos]
        start, end = (encoded.start + o for o in encoded.encoding.offsets[pos])
        if word not in spans:
            spans[word] = [start, end, []]
        spans[word][1] = max(spans[word][1], end)
        spans[word][2].append(pos)
    return [tuple(s) for s in spans.values()]


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
