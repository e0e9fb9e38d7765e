"""The WordPiece tokenizer (Hugging Face `tokenizers`) and how any text becomes the tokens the model reads.

The rnn's tokenizer is trained on the training split (`train_tokenizer`); an encoder model's is its encoder's
own (`encoder_tokenizer`, BERT's uncased 30,522-piece vocabulary), and the model reads [CLS] text [SEP].
Either is saved as `tokenizer.json` beside the weights, so the demo splits text exactly as training did.
Any Python string is accepted: lone surrogates become U+FFFD, control characters become spaces (the rnn)
or are dropped (the encoder's BERT normaliser), and the string is cut to a character budget before
tokenising, so 100,000 characters cost no more than a few thousand.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from training.tasks.base import InputError
from training.tasks.text.config import TextConfig

TOKENIZER_NAME = "tokenizer.json"
# [PAD] must be id 0: the training cache right-pads rows with zeros (training/cache.py).
PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
# Characters read per allowed token before tokenising. English averages about 6 characters per WordPiece
# token; 64 leaves room for long words and whitespace runs while bounding the work on huge inputs.
CHARS_PER_TOKEN = 64
_SURROGATES = re.compile("[\ud800-\udfff]")


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


def train_tokenizer(config: TextConfig, train_inputs) -> TextConfig:
    """Train the WordPiece tokenizer on the training texts; `vocab_size` becomes its actual size. A
    tokenizer already loaded (--init-from) is kept: the embeddings it starts from are indexed by it. An
    encoder model takes its encoder's tokenizer instead (`encoder_tokenizer`)."""
    from tokenizers import trainers

    if config.tokenizer is not None:
        return config
    if config.uses_encoder:
        return encoder_tokenizer(config)

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


def encoder_tokenizer(config: TextConfig) -> TextConfig:
    """The encoder's own tokenizer (its package's tokenizer.json, without the fixed 128-token padding and
    truncation it ships with: batches are padded by the cache, texts cut by `encode_text`), and the record
    of the encoder weights the model is built on (kept when already set, e.g. from --init-from)."""
    from tokenizers import Tokenizer

    from training.tasks.text import encoder

    folder = encoder.package_folder()
    tokenizer = Tokenizer.from_file(str(folder / encoder.TOKENIZER_FILE))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    config.vocab_size = tokenizer.get_vocab_size()
    check_special_ids(tokenizer, folder / encoder.TOKENIZER_FILE, config)
    config.tokenizer = tokenizer
    config.encoder_weights = config.encoder_weights or encoder.weights_record(folder)
    return config


def special_ids(config: TextConfig) -> dict[str, int]:
    """The special tokens' ids the code relies on: [PAD] and [UNK]; [CLS] and [SEP] for an encoder."""
    if config.uses_encoder:
        from training.tasks.text.encoder import SPECIAL_IDS
        return SPECIAL_IDS
    return {PAD: PAD_ID, UNK: UNK_ID}


def unk_id(config: TextConfig) -> int:
    return special_ids(config)[UNK]


def check_special_ids(tokenizer, path, config: TextConfig) -> None:
    from training.checkpoint import CheckpointError

    expected = special_ids(config)
    ids = {token: tokenizer.token_to_id(token) for token in expected}
    size = tokenizer.get_vocab_size()
    fits = size == config.vocab_size if config.uses_encoder else size <= config.vocab_size
    if ids != expected or not fits:
        raise CheckpointError(f"{path}: does not fit the model in config.json (vocabulary of {size} vs "
                              f"{config.vocab_size}, special ids {ids}, expected {expected}).")


def save_tokenizer(config: TextConfig, folder) -> None:
    from training.checkpoint import atomic_write

    atomic_write(Path(folder) / TOKENIZER_NAME, lambda tmp: config.tokenizer.save(tmp))


def load_tokenizer(config: TextConfig, folder) -> None:
    from tokenizers import Tokenizer

    from training.checkpoint import CheckpointError

    path = Path(folder) / TOKENIZER_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing. A text checkpoint needs its tokenizer beside the weights.")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:   # tokenizers raises its own Exception type for malformed files
        raise CheckpointError(f"{path}: not a readable tokenizer file ({e}).") from None
    check_special_ids(tokenizer, path, config)
    config.tokenizer = tokenizer


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
    ids: list[int]        # the tokens the model reads: at most max_tokens, [CLS] and [SEP] included
    truncated: bool       # whether any of the text was left unread
    encoding: object      # the tokenizers.Encoding of the text alone, for word offsets
    start: int            # its offsets count from this character of the cleaned text
    lead: int = 0         # tokens before the text's first ([CLS]): ids[lead + i] is the encoding's token i

    @property
    def text_ids(self) -> list[int]:
        """The tokens of the text itself, without [CLS] and [SEP]."""
        return self.ids[self.lead: self.lead + len(self.ids) - 2 * self.lead]


def encode_text(config: TextConfig, text) -> Encoded:
    """Any text -> the tokens the model reads. Leading whitespace is skipped before the character budget
    is applied, so a long run of spaces cannot push the words out of it."""
    text = clean(text)
    start = len(text) - len(text.lstrip())
    limit = char_limit(config)
    encoding = config.tokenizer.encode(text[start:start + limit], add_special_tokens=False)
    lead = 1 if config.uses_encoder else 0
    body = encoding.ids[: config.max_tokens - 2 * lead]
    ids = [special_ids(config)["[CLS]"], *body, special_ids(config)["[SEP]"]] if lead else body
    return Encoded(ids, len(text) - start > limit or len(encoding.ids) > len(body), encoding, start, lead)


def tokenize(config: TextConfig, text) -> tuple[list[int], bool]:
    """(token ids, truncated) for one user text; empty or blank text raises `InputError`."""
    if text is not None and not isinstance(text, str):
        raise InputError(f"Expected text, got {type(text).__name__}.")
    if not text:
        raise InputError("The text is empty. Please type a sentence to classify.")
    encoded = encode_text(config, text)
    if not encoded.text_ids:
        raise InputError("The text has only spaces or invisible control characters. Please type a sentence "
                             "to classify.")
    return encoded.ids, encoded.truncated
