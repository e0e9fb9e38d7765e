"""From a clip to the model's input: the float16 training cache, batches (augmented when training), and
`listen`, which the demo uses to decode one input exactly as training did."""

from __future__ import annotations

from typing import NamedTuple

import torch

from training.tasks.speech.audio import load_audio
from training.tasks.speech.augment import add_noise, room_and_channel, spec_augment, stretch, time_shift
from training.tasks.speech.config import SpeechConfig
from training.tasks.speech.features import log_mel


def encode(config: SpeechConfig, raw) -> torch.Tensor:
    # float16 halves the cache; its 11-bit mantissa keeps quiet clips intact, where int16 would not.
    return load_audio(raw, config.sample_rate, config.clip_seconds).waveform.to(torch.float16)



def make_batch(config: SpeechConfig, data: torch.Tensor, lengths, *, train: bool,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor]:
    """Cached waveforms (batch, samples) -> (log-mel features,), augmented when training."""
    x = data.float()
    if train:
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        x = time_shift(x, int(config.sample_rate * config.time_shift_ms / 1000), generator)
        x = room_and_channel(config, x, generator)
        if config.noise_prob > 0:
            x = add_noise(config, x, generator)
    features = log_mel(config, x)
    if train:
        features = spec_augment(config, stretch(features, config.stretch, generator, config.time_stretch))
    return (features,)



class Heard(NamedTuple):
    """What the model was given for one input: the waveform it heard, its features, and notes."""
    config: SpeechConfig
    waveform: torch.Tensor   # (clip_samples,) float32
    features: torch.Tensor   # (1, n_mels, frames), the model's input
    sample_rate: int
    duration: float
    start: float
    notes: tuple


def listen(config: SpeechConfig, raw) -> Heard:
    """Decode one demo input (path, bytes or (sample_rate, array)) exactly as training did."""
    clip = load_audio(raw, config.sample_rate, config.clip_seconds)
    # Through the float16 cache format too, so the demo's input is bit-identical to a training row's.
    features = make_batch(config, clip.waveform.to(torch.float16).unsqueeze(0), None, train=False)[0]
    return Heard(config, clip.waveform, features, config.sample_rate, clip.duration, clip.start, clip.notes)


def prepare(config: SpeechConfig, raw) -> tuple[torch.Tensor]:
    """One raw demo input (path, bytes, (sample_rate, array) or a `Heard`) -> a batch of one."""
    if isinstance(raw, Heard) and raw.config == config:
        return (raw.features,)
    return (listen(config, raw).features,)
