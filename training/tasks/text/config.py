"""The text task's settings: one dataclass, whose `option` fields are also the `text` command's flags."""

from __future__ import annotations

from dataclasses import dataclass

from training.errors import SettingsError
from training.settings import option

CELLS = ("gru", "lstm")
POOLINGS = ("mean", "max", "attention")


@dataclass
class TextConfig:
    architecture: str = "rnn"
    vocab_size: int = option(12000, "WordPiece vocabulary size; after training its tokenizer, the actual size",
                             role="fitted")
    max_tokens: int = option(128, "longer texts are cut to this many tokens")
    embedding_size: int = option(128, "token embedding size")
    hidden_size: int = option(160, "recurrent units per direction")
    layers: int = option(1, "stacked recurrent layers")
    cell: str = option("gru", "recurrent cell", choices=CELLS)
    bidirectional: bool = option(True, "read the text in both directions", negatable=True)
    dropout: float = option(0.3, "on embeddings, between layers and before the classifier", role="train")
    pooling: str = option("max", "how the per-token states become one vector", choices=POOLINGS)
    token_dropout: float = option(0.1, "train time: share of tokens replaced by [UNK], for robustness to new "
                                       "words", role="train")

    def __post_init__(self):
        self.tokenizer = None        # tokenizers.Tokenizer; not a field, so config.json stays plain JSON


def check(config: TextConfig) -> TextConfig:
    """Refuse impossible settings, naming their flags."""
    if config.architecture != "rnn":
        raise SettingsError(f"unknown architecture {config.architecture!r}")
    for f in ("vocab_size", "max_tokens", "embedding_size", "hidden_size", "layers"):
        if getattr(config, f) < 1:
            raise SettingsError(f"--{f.replace('_', '-')} {getattr(config, f)}: must be at least 1.")
    if config.vocab_size < 3:
        raise SettingsError(f"--vocab-size {config.vocab_size}: must be at least 3 ([PAD], [UNK] and a word).")
    for f in ("dropout", "token_dropout"):
        if not 0 <= getattr(config, f) < 1:
            raise SettingsError(f"--{f.replace('_', '-')} {getattr(config, f)}: must be in [0, 1).")
    if config.cell not in CELLS or config.pooling not in POOLINGS:
        raise SettingsError(f"cell {config.cell!r} / pooling {config.pooling!r}: expected one of {CELLS} / {POOLINGS}.")
    return config
