"""Text classification, defined once for training and the demo.

    config.py       TextConfig: the settings, which are also the `text` command's flags
    tokenizer.py    the WordPiece tokenizers (the rnn's, trained on the training split; an encoder's own),
                    and any text -> token ids
    preprocess.py   the token-id training cache, batches (token dropout when training), `prepare`
    encoder.py      the pretrained MiniLM-L6 encoder, read from its installed package and checked
    model.py        the rnn (embedding -> (bi)GRU/LSTM -> masked pooling -> linear) and the encoder models
                    (encoder -> GRU head or pooled linear head)
    explain.py      word importances by occlusion
    recipe.py       the default recipe for the data at hand
"""

from __future__ import annotations

import hashlib

import torch

from training.tasks.base import InputError, Recipe, Task, TeachRecipe
from training.tasks.text.config import ARCHITECTURES, CELLS, FROM_SCRATCH, POOLINGS, TextConfig, check
from training.tasks.text.explain import (explain, occlusion_scores, pad_batch, probabilities, unknown_words,
                                         word_spans)
from training.tasks.text.model import EncoderClassifier, TextClassifier, build_model
from training.tasks.text.preprocess import encode, make_batch, prepare
from training.tasks.text.tokenizer import (CHARS_PER_TOKEN, PAD, PAD_ID, TOKENIZER_NAME, UNK, UNK_ID, Encoded,
                                           char_limit, clean, encode_text, load_tokenizer, new_tokenizer,
                                           save_tokenizer, special_ids, tokenize, train_tokenizer)

__all__ = ["ARCHITECTURES", "CELLS", "CHARS_PER_TOKEN", "FROM_SCRATCH", "PAD", "PAD_ID", "POOLINGS", "TASK",
           "TOKENIZER_NAME", "UNK", "UNK_ID", "Encoded", "EncoderClassifier", "InputError", "TextClassifier",
           "TextConfig", "TextTask", "build_model", "char_limit", "check", "clean", "encode", "encode_text",
           "explain", "load_tokenizer", "make_batch", "new_tokenizer", "occlusion_scores", "pad_batch", "prepare",
           "probabilities", "save_tokenizer", "special_ids", "tokenize", "train_tokenizer", "unknown_words",
           "word_spans"]


class TextTask(Task):
    name = "text"
    Config = TextConfig
    summary = "fine-tune a text classifier"
    input_columns = ("text", "sentence", "content")
    input_flag = "--text-column"
    # AdamW at 3e-3 with warm-up and linear decay trains a small bi-GRU in a few epochs; clipping the
    # gradient norm at 1 is the usual guard against exploding recurrent gradients; class weights on
    # because text datasets are often skewed (dair-ai/emotion: 34% joy, 4% surprise), which costs little
    # accuracy and lifts macro-F1 (--no-class-weights turns them off).
    train_defaults = dict(epochs=8, batch_size=64, lr=3e-3, weight_decay=0.01, optimizer="adamw",
                          label_smoothing=0.0, warmup_fraction=0.05, grad_clip=1.0, class_weights=True)
    pipeline_tag = "text-classification"
    default_model = "emotion"
    teach = TeachRecipe(title="Text", layout="csv", min_per_class=5)
    explanation = "word importances by occlusion, in [-1, 1]"

    check = staticmethod(check)

    def preprocessing(self, config: TextConfig) -> dict:
        if config.uses_encoder:
            out = {"tokenizer": "WordPiece, the encoder's own (BERT uncased, all-MiniLM-L6-v2), " + TOKENIZER_NAME,
                   "normalizer": "BERT: control characters removed, CJK characters split, accents stripped, "
                                 "lowercase", "template": "[CLS] text [SEP]", "max_tokens": config.max_tokens,
                   "max_chars": char_limit(config), **{f"{t.strip('[]').lower()}_id": i
                                                        for t, i in special_ids(config).items()}}
        else:
            out = {"tokenizer": "WordPiece (Hugging Face tokenizers), " + TOKENIZER_NAME,
                   "normalizer": "control characters -> space, format characters removed, NFKC, lowercase",
                   "max_tokens": config.max_tokens, "max_chars": char_limit(config), "pad_id": PAD_ID,
                   "unk_id": UNK_ID}
        if config.tokenizer is not None:   # the tokenizer's digest keys the training cache: new vocab, new ids
            out["tokenizer_sha256"] = hashlib.sha256(config.tokenizer.to_str().encode()).hexdigest()[:16]
        return out

    def fit(self, config: TextConfig, train_inputs) -> TextConfig:
        return train_tokenizer(config, train_inputs)

    encode = staticmethod(encode)
    make_batch = staticmethod(make_batch)
    build_model = staticmethod(build_model)

    def head(self, model):
        """The rnn's classifier; an encoder model's whole head (its GRU too), which starts afresh and
        trains at the full learning rate while the encoder gets --backbone-lr-scale of it."""
        return model.head if isinstance(model, EncoderClassifier) else model.classifier

    def recipe(self, splits, settings) -> Recipe | None:
        from training.tasks.text.recipe import default_recipe

        return default_recipe(splits, settings.given or frozenset(), settings.task)

    def pretrained_source(self, config: TextConfig) -> dict | None:
        if not config.uses_encoder or config.encoder_weights is None:
            return None
        from training.tasks.text import encoder

        record = config.encoder_weights
        return {"source": f"package {record['package']} {record['version']} ({encoder.SOURCE})",
                "kind": f"the pretrained sentence encoder {encoder.SOURCE.split('/')[-1]}",
                "file": record["file"], "sha256": record["sha256"], "license": encoder.LICENSE}

    def save_extra(self, config: TextConfig, folder) -> None:
        save_tokenizer(config, folder)

    def load_extra(self, config: TextConfig, folder) -> None:
        load_tokenizer(config, folder)

    prepare = staticmethod(prepare)

    def explain(self, model, config: TextConfig, raw):
        return explain(model, config, raw)

    def sample_input(self, config: TextConfig) -> str:
        return "a short sentence to warm the model up"

    # ------------------------------------------------------------------------------------ portability

    def example_inputs(self, config: TextConfig) -> tuple[torch.Tensor, torch.Tensor]:
        """A text of `max_tokens` [UNK] tokens: the longest the model reads."""
        return (torch.full((1, config.max_tokens), special_ids(config)[UNK], dtype=torch.long),
                torch.full((1,), config.max_tokens, dtype=torch.long))

    def export_module(self, model, config: TextConfig):
        """An encoder model's layers written out as their operators (portable.py), which trace with any
        batch and length; the rnn as it is."""
        if not config.uses_encoder:
            return model
        from training.tasks.text.portable import ExportEncoderClassifier

        return ExportEncoderClassifier(model)

    def onnx_input_names(self, config: TextConfig) -> tuple[str, str]:
        return ("input_ids", "lengths")

    def onnx_dynamic_axes(self, config: TextConfig) -> dict[str, dict[int, str]]:
        return {"input_ids": {0: "batch", 1: "tokens"}, "lengths": {0: "batch"}}

    def onnx_usage(self, config: TextConfig) -> list[str]:
        if config.uses_encoder:   # the encoder reads [CLS] text [SEP]
            ids = special_ids(config)
            cut = (f'ids = [{ids["[CLS]"]}, *tokenizer.encode("i feel wonderful today", add_special_tokens=False)'
                   f'.ids[:{config.max_tokens - 2}], {ids["[SEP]"]}]')
        else:
            cut = (f'ids = tokenizer.encode("i feel wonderful today", add_special_tokens=False).ids[:{config.max_tokens}]'
                   f" or [{UNK_ID}]")
        return ["from tokenizers import Tokenizer",
                f'tokenizer = Tokenizer.from_file(f"{{folder}}/{TOKENIZER_NAME}")', cut,
                'inputs = {"input_ids": np.array([ids], dtype=np.int64), "lengths": np.array([len(ids)], dtype=np.int64)}']

    def limitations(self, config: dict) -> list[str]:
        cut = f"text past {config.get('model', {}).get('max_tokens', 128)} tokens is cut."
        if config.get("model", {}).get("architecture", FROM_SCRATCH) == FROM_SCRATCH:
            return ["It reads lowercased words spelled with the WordPiece vocabulary it learned from its training "
                    "data: a word holding a character outside that vocabulary's alphabet (an emoji, another "
                    "script) becomes one [UNK] token, words it never saw are read by their pieces only, and " + cut]
        return ["It reads text through an English sentence encoder (all-MiniLM-L6-v2, BERT's uncased vocabulary): "
                "other languages are read poorly, a word holding a character outside that vocabulary (most emoji) "
                "becomes one [UNK] token, and " + cut]


TASK = TextTask()
