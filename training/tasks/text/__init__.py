"""Text classification, defined once for training and the demo.

    config.py       TextConfig: the settings, which are also the `text` command's flags
    tokenizer.py    the WordPiece tokenizer trained on the training split, and any text -> token ids
    preprocess.py   the token-id training cache, batches (token dropout when training), `prepare`
    model.py        embedding -> (bi)GRU/LSTM over packed sequences -> masked pooling -> linear
    explain.py      word importances by occlusion
"""

from __future__ import annotations

import hashlib

import torch

from training.tasks.base import InputError, Task, TeachRecipe
from training.tasks.text.config import CELLS, POOLINGS, TextConfig, check
from training.tasks.text.explain import explain, occlusion_scores, pad_batch, probabilities, word_spans
from training.tasks.text.model import TextClassifier, build_model
from training.tasks.text.preprocess import encode, make_batch, prepare
from training.tasks.text.tokenizer import (CHARS_PER_TOKEN, PAD, PAD_ID, TOKENIZER_NAME, UNK, UNK_ID, Encoded,
                                           char_limit, clean, encode_text, load_tokenizer, new_tokenizer,
                                           save_tokenizer, tokenize, train_tokenizer)

__all__ = ["CELLS", "CHARS_PER_TOKEN", "PAD", "PAD_ID", "POOLINGS", "TASK", "TOKENIZER_NAME", "UNK", "UNK_ID",
           "Encoded", "InputError", "TextClassifier", "TextConfig", "TextTask", "build_model", "char_limit",
           "check", "clean", "encode", "encode_text", "explain", "load_tokenizer", "make_batch", "new_tokenizer",
           "occlusion_scores", "pad_batch", "prepare", "probabilities", "save_tokenizer", "tokenize",
           "train_tokenizer", "word_spans"]


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

    def recipe(self, splits, settings):
        """A few rows per label: transfer from the shipped emotion model, whose tokenizer, embeddings and
        encoder already read English; more: the network from scratch."""
        from pathlib import Path

        from training.tasks.base import Recipe

        base = Path(settings.train.checkpoints) / self.name / "emotion"
        per_label = len(splits.train) / max(1, len(splits.labels))
        if per_label >= 100 or not (base / "config.json").is_file() or settings.given & {"architecture", "init_from"}:
            return None
        return Recipe(name=f"transfer from {base}, 20 epochs", reason=f"{per_label:.0f} rows per label",
                      train=dict(transfer_from=str(base), epochs=20, batch_size=16, lr=0.003, patience=6))

    def preprocessing(self, config: TextConfig) -> dict:
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
        return model.classifier

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
        return (torch.full((1, config.max_tokens), UNK_ID, dtype=torch.long),
                torch.full((1,), config.max_tokens, dtype=torch.long))

    def onnx_input_names(self, config: TextConfig) -> tuple[str, str]:
        return ("input_ids", "lengths")

    def onnx_dynamic_axes(self, config: TextConfig) -> dict[str, dict[int, str]]:
        return {"input_ids": {0: "batch", 1: "tokens"}, "lengths": {0: "batch"}}

    def onnx_usage(self, config: TextConfig) -> list[str]:
        return ["from tokenizers import Tokenizer",
                f'tokenizer = Tokenizer.from_file(f"{{folder}}/{TOKENIZER_NAME}")',
                f'ids = tokenizer.encode("i feel wonderful today", add_special_tokens=False).ids[:{config.max_tokens}]'
                f" or [{UNK_ID}]",
                'inputs = {"input_ids": np.array([ids], dtype=np.int64), "lengths": np.array([len(ids)], dtype=np.int64)}']

    def limitations(self, config: dict) -> list[str]:
        return ["It reads lowercased words from its own vocabulary; unknown words become one [UNK] token, and "
                "text past its token limit is cut."]


TASK = TextTask()
