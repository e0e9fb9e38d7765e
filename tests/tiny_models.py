"""Small checkpoints of every task, built in the test (no training): weights moved off their initial values
so that the logits are O(1) and depend on the input, as a trained model's do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training import checkpoint as ckpt
from training.tasks import get_task

WORDS = ("happy", "sad", "angry", "calm", "tired", "glad", "afraid", "today", "i", "feel", "very", "not")


def lively(model: torch.nn.Module, *inputs: torch.Tensor) -> torch.nn.Module:
    """`model` with random heads and BatchNorm affine terms, and running statistics set from `inputs`.

    (Libraries initialise classifier heads near zero and BatchNorm to the identity: every label would be
    about equally likely, and a wrong export could still agree.)"""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, 0, 2 / m.in_features ** 0.5)
                if m.bias is not None:
                    torch.nn.init.normal_(m.bias, 0, 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                if m.weight is not None and m.weight.requires_grad:
                    m.weight.uniform_(0.5, 1.5)
                if m.bias is not None:
                    m.bias.normal_(0, 0.1)
                m.momentum = None   # running statistics := this batch's
        if inputs:
            model.train()(*inputs)
    return model.eval()


def save(folder: Path, task_name: str, config, model, labels) -> Path:
    task = get_task(task_name)
    ckpt.save_checkpoint(folder, model, {"task": task_name, "architecture": task.architecture(config),
                                         "labels": list(labels), "model": task.config_to_dict(config),
                                         "preprocessing": task.preprocessing_record(config)})
    task.save_extra(config, folder)
    return folder


def image_checkpoint(folder: Path, labels=("cat", "dog", "ship"), **settings) -> Path:
    from training.tasks.image import ImageConfig

    task = get_task("image")
    config = task.check(ImageConfig(**{"architecture": "resnet20", "image_size": 24, "width": 8, **settings}))
    model = task.build_model(config, len(labels))
    x = torch.randn(8, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(1))
    return save(folder, "image", config, lively(model, x), labels)


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) for _ in range(n)]


def text_checkpoint(folder: Path, labels=("joy", "anger", "fear")) -> Path:
    from training.tasks.text import TextConfig

    task = get_task("text")
    config = task.fit(TextConfig(vocab_size=60, max_tokens=12, embedding_size=16, hidden_size=12),
                      sentences(200) * 2)
    return save(folder, "text", config, lively(task.build_model(config, len(labels))), labels)


def encoder_text_checkpoint(folder: Path, labels=("joy", "anger", "fear")) -> Path:
    """The pretrained MiniLM-L6 encoder (its top three layers and a GRU head made lively) over the
    encoder's own tokenizer."""
    from training.tasks.text import TextConfig

    task = get_task("text")
    config = task.fit(task.check(TextConfig(architecture="minilm-gru", max_tokens=16, hidden_size=12)), [])
    return save(folder, "text", config, lively(task.build_model(config, len(labels))), labels)


def speech_checkpoint(folder: Path, labels=("yes", "no", "up")) -> Path:
    from training.tasks.speech import SpeechConfig

    task = get_task("speech")
    config = task.check(SpeechConfig(sample_rate=8000, channels=8, hidden_size=12))
    model = task.build_model(config, len(labels))
    features = task.make_batch(config, 0.1 * torch.randn(8, config.clip_samples), None, train=False)[0]
    return save(folder, "speech", config, lively(model, features), labels)


def clip(i: int, rate: int = 8000, seconds: float = 1.0) -> tuple[int, np.ndarray]:
    """(rate, samples): a tone burst of a varying pitch and place in quiet noise, as the tabs get audio."""
    rng = np.random.default_rng(i)
    x = rng.normal(0, 0.01, int(rate * seconds)).astype(np.float32)
    n = min(rate // 3, len(x) // 2)
    start = int(rng.integers(0, len(x) - n))
    x[start:start + n] += 0.4 * np.sin(2 * np.pi * float(rng.uniform(150, 2500)) * np.arange(n) / rate)
    return rate, x


def photo(i: int, size: int = 40):
    """A random RGB picture of random shape, as a PIL image."""
    from PIL import Image

    rng = np.random.default_rng(i)
    h, w = int(rng.integers(size // 2, 2 * size)), int(rng.integers(size // 2, 2 * size))
    base = rng.integers(0, 256, 3)
    pixels = np.clip(base + rng.normal(0, 60, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)
