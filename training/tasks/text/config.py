"""The text task's settings: one dataclass, whose `option` fields are also the `text` command's flags."""

from __future__ import annotations

from dataclasses import dataclass

from training.errors import SettingsError
from training.settings import option

# "rnn": embeddings and a recurrent network trained from scratch, on a WordPiece vocabulary trained on the
# data. The others read the text with the pretrained MiniLM-L6 encoder (its own tokenizer) and put a head
# over its token states: a bidirectional GRU ("minilm-gru") or a pooled linear layer ("minilm-linear").
ARCHITECTURES = ("rnn", "minilm-gru", "minilm-linear")
FROM_SCRATCH = "rnn"
CELLS = ("gru", "lstm")
POOLINGS = ("mean", "max", "attention")
WEIGHTS_DTYPES = ("float32", "float16")


@dataclass
class TextConfig:
    architecture: str = option(FROM_SCRATCH, "rnn: embeddings and a recurrent network from scratch, on a vocabulary "
                                             "learned from the data; minilm-gru: the pretrained MiniLM-L6 encoder with "
                                             "a bidirectional GRU head over its token states; minilm-linear: the "
                                             "encoder with a pooled linear head", flag="--model", choices=ARCHITECTURES)
    vocab_size: int = option(12000, "rnn: WordPiece vocabulary size; after training its tokenizer, the actual size "
                                    "(an encoder model has its encoder's)", role="fitted")
    max_tokens: int = option(128, "longer texts are cut so that the model reads at most this many tokens (an "
                                  "encoder's [CLS] and [SEP] included)")
    embedding_size: int = option(128, "rnn: token embedding size (an encoder model's is its encoder's width)")
    hidden_size: int = option(160, "recurrent units per direction (rnn, minilm-gru)")
    layers: int = option(1, "stacked recurrent layers (rnn; the minilm-gru head has one)")
    cell: str = option("gru", "recurrent cell (rnn; the minilm-gru head is a GRU)", choices=CELLS)
    bidirectional: bool = option(True, "read the text in both directions (rnn, minilm-gru)", negatable=True)
    dropout: float = option(0.3, "on embeddings, between layers and before the classifier (an encoder keeps its "
                                 "own, 0.1)", role="train")
    pooling: str = option("max", "how the per-token states become one vector", choices=POOLINGS)
    token_dropout: float = option(0.1, "train time: share of tokens replaced by [UNK], for robustness to new "
                                       "words", role="train")
    frozen_layers: int = option(3, "encoder models: how many of the encoder's lowest layers keep their pretrained "
                                   "weights, with its embeddings; those are read from the installed encoder package "
                                   "and not saved in the checkpoint")
    train_embeddings: bool = option(False, "encoder models: fine-tune the encoder's embeddings too (adds 45 MB to "
                                           "every checkpoint)")
    weights_dtype: str = option("float32", "how the checkpoint stores the weights that trained: float16 halves the file "
                                           "(6 fine-tuned encoder layers: 42 -> 21 MB); the model computes in float32 "
                                           "either way", choices=WEIGHTS_DTYPES, role="train")
    # The installed encoder package whose weights an encoder model was built from: {package, version, file,
    # sha256}, recorded when the run starts and checked whenever the model is built again.
    encoder_weights: dict | None = option(None, role="fitted")

    def __post_init__(self):
        self.tokenizer = None        # tokenizers.Tokenizer; not a field, so config.json stays plain JSON

    @property
    def uses_encoder(self) -> bool:
        return self.architecture != FROM_SCRATCH


def check(config: TextConfig) -> TextConfig:
    """Refuse impossible settings, naming their flags; an encoder model's encoder-given sizes are settled."""
    from training.tasks.text import encoder

    if config.architecture not in ARCHITECTURES:
        raise SettingsError(f"--model {config.architecture!r}: expected one of {', '.join(ARCHITECTURES)}.")
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
    if config.uses_encoder:
        check_encoder_settings(config, encoder)
    return config


def check_encoder_settings(config: TextConfig, encoder) -> None:
    """An encoder model's settings; its embedding size is its encoder's width (config.json says so)."""
    if not 3 <= config.max_tokens <= encoder.POSITIONS:
        raise SettingsError(f"--max-tokens {config.max_tokens}: an encoder model reads 3 to {encoder.POSITIONS} tokens "
                         "([CLS], at least one of the text, [SEP]).")
    if not 0 <= config.frozen_layers <= encoder.LAYERS:
        raise SettingsError(f"--frozen-layers {config.frozen_layers}: the encoder has {encoder.LAYERS} layers.")
    if config.architecture == "minilm-gru" and (config.cell, config.layers) != ("gru", 1):
        raise SettingsError(f"--cell {config.cell} --layers {config.layers}: the minilm-gru head is one GRU layer; "
                         "give --model rnn for other recurrent networks.")
    config.embedding_size = encoder.WIDTH
