"""Spoken-word recognition, defined once for training and the demo.

    config.py            SpeechConfig: the settings, which are also the `speech` command's flags
    audio.py             any clip (file, bytes, array) -> checked, fixed-length mono waveform at the model's rate
    features.py          log-mel features, normalised per clip
    preprocess.py        the float16 training cache, batches, and `listen` (one demo input, as training heard it)
    augment.py           time shift, background noise, time/frequency stretch, SpecAugment
    model.py             a conv front end and a bidirectional GRU/LSTM
    speech_commands.py   the Speech Commands adapter: 35 words -> the 12-class keyword layout
    recipe.py            the default recipe: transfer from the shipped keyword model
    explain.py           a picture of what the model heard: waveform and log-mel

Training caches fixed-length waveforms as float16 and computes the features per batch on the training
device, where the augmentation also runs. The demo calls `listen` (or `prepare`), which runs the same
decoding and the same feature code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.tasks.base import InputError, Task, TeachRecipe
from training.tasks.speech.audio import MAX_READ_SECONDS, AudioClip, load_audio, read_samples
from training.tasks.speech.augment import (MAX_NOISE_CLIPS, NOISE_FOLDERS, add_noise, collect_noise, noise_like,
                                           spec_augment, stretch, time_shift)
from training.tasks.speech.config import CELLS, CLIP_SECONDS, INPUT_COLUMNS, N_MELS, SAMPLE_RATE, SpeechConfig, check
from training.tasks.speech.corrupt import CORRUPTIONS, corrupt
from training.tasks.speech.features import log_mel, mel_transform
from training.tasks.speech.model import SpeechRecognizer, build_model
from training.tasks.speech.preprocess import Heard, encode, listen, make_batch, prepare
from training.tasks.speech.recipe import recipe as speech_recipe
from training.tasks.speech.speech_commands import COMMANDS, KEYWORD_LABELS, SILENCE, UNKNOWN, adapt_dataset

__all__ = ["CELLS", "CLIP_SECONDS", "COMMANDS", "KEYWORD_LABELS", "MAX_NOISE_CLIPS", "MAX_READ_SECONDS", "N_MELS",
           "NOISE_FILE", "NOISE_FOLDERS", "SAMPLE_RATE", "SILENCE", "TASK", "UNKNOWN", "AudioClip", "Heard",
           "InputError", "SpeechConfig", "SpeechRecognizer", "SpeechTask", "adapt_dataset", "add_noise",
           "build_model", "check", "encode", "listen", "load_audio", "log_mel", "make_batch", "mel_transform",
           "noise_like", "prepare", "read_samples", "spec_augment", "stretch", "time_shift"]

NOISE_FILE = "train_noise.safetensors"   # the training split's background noise, kept for --resume only


class SpeechTask(Task):
    name = "speech"
    Config = SpeechConfig
    summary = "fine-tune a speech classifier"
    input_columns = INPUT_COLUMNS
    input_flag = "--audio-column"
    # AdamW at 3e-3 with a short warm-up trains the recurrent layer stably from scratch in tens of epochs;
    # gradient clipping guards the GRU against the occasional exploding step.
    train_defaults = dict(epochs=40, batch_size=64, lr=3e-3, weight_decay=0.05, optimizer="adamw",
                          label_smoothing=0.1, warmup_fraction=0.1, grad_clip=5.0, class_weights=False)
    pipeline_tag = "audio-classification"
    default_model = "speech_commands"
    # A project's noise recordings become `_silence_` clips: both a class and the noise mixed into training.
    teach = TeachRecipe(title="Sound", capture="microphone", extensions=(".wav", ".flac", ".ogg", ".mp3"),
                        min_per_class=5, noise_label="_silence_")
    local_files = (NOISE_FILE,)
    explanation = "the waveform and log-mel spectrogram the model heard"

    check = staticmethod(check)

    def recipe(self, splits, settings):
        """Transfer from the shipped speech_commands model, the clips resampled to its rate
        (training/tasks/speech/recipe.py)."""
        return speech_recipe(splits, settings)

    def preprocessing(self, config: SpeechConfig) -> dict:
        augment = (f"time shift +-{config.time_shift_ms:g} ms, background noise (p={config.noise_prob:g}, SNR "
                   f"{config.snr_db[0]:g}-{config.snr_db[1]:g} dB), "
                   + (f"time/frequency stretch +-{config.stretch:.0%}, " if config.time_stretch is None else
                      f"time stretch +-{config.time_stretch:.0%}, frequency stretch +-{config.stretch:.0%}, ")
                   + f"SpecAugment (F={config.freq_mask}, T={config.time_mask})"
                 + (f", a synthetic room (p={config.reverb_prob:g})" if config.reverb_prob else "")
                 + (f", a telephone or narrow band (p={config.band_prob:g})" if config.band_prob else "")
                 + (f", gain +-{config.gain_db:g} dB" if config.gain_db else "")
                 + (f", clipping (p={config.clip_prob:g})" if config.clip_prob else ""))
        return {"sample_rate": config.sample_rate, "clip_seconds": config.clip_seconds, "channels": "mono (mean)",
                "long_clips": f"loudest window of clip_seconds within the first {MAX_READ_SECONDS:g} s",
                "short_clips": "centred, zero-padded", "features": "log-mel, normalised per clip (mean 0, std 1)",
                "n_mels": config.n_mels, "win_ms": config.win_ms, "hop_ms": config.hop_ms, "f_min": config.f_min,
                "f_max": config.f_max or config.sample_rate / 2, "top_db": config.top_db,
                "train_augment": augment}

    def adapt_dataset(self, raw, config: SpeechConfig, seed: int):
        return adapt_dataset(raw, config, seed)

    def fit(self, config: SpeechConfig, train_inputs) -> SpeechConfig:
        """Keep the training split's background-noise clips for noise mixing."""
        config.noise = collect_noise(config, train_inputs, encode)
        return config

    encode = staticmethod(encode)
    make_batch = staticmethod(make_batch)
    build_model = staticmethod(build_model)

    def head(self, model):
        return model.head

    def save_extra(self, config: SpeechConfig, folder) -> None:
        if config.noise is not None:   # only for --resume; the demo never needs it
            from safetensors.torch import save_file

            from training.checkpoint import atomic_write
            atomic_write(Path(folder) / NOISE_FILE, lambda tmp: save_file({"noise": config.noise.contiguous()}, tmp))

    def load_extra(self, config: SpeechConfig, folder) -> None:
        path = Path(folder) / NOISE_FILE
        if path.is_file():
            from safetensors.torch import load_file
            config.noise = load_file(path)["noise"]

    prepare = staticmethod(prepare)

    def explain(self, model, config: SpeechConfig, raw):
        """A matplotlib figure of what the model heard of `raw` (a clip or a `Heard`)."""
        from training.tasks.speech.explain import heard_figure
        return heard_figure(raw if isinstance(raw, Heard) and raw.config == config else listen(config, raw))

    def sample_input(self, config: SpeechConfig):
        """One second of quiet noise at the model's rate, as (sample_rate, samples)."""
        import numpy as np
        noise = np.random.default_rng(0).normal(0, 0.05, int(config.sample_rate * config.clip_seconds))
        return config.sample_rate, noise.astype(np.float32)

    corruptions = CORRUPTIONS

    def corrupt(self, config: SpeechConfig, data, name: str, seed: int = 0):
        return corrupt(data, config.sample_rate, name, seed)

    def split_recording(self, path, folder, stem: str) -> list:
        """A long recording (background noise) cut into clip-length mono WAV pieces at its own rate (the
        training decoder resamples them like any clip); at most MAX_READ_SECONDS of it are read."""
        import soundfile as sf

        data, rate, _ = read_samples(path, MAX_READ_SECONDS)
        wave = data.mean(axis=1) if data.ndim == 2 else data
        size = max(1, int(rate * CLIP_SECONDS))
        out = []
        for k in range(max(1, len(wave) // size)):
            target = Path(folder) / f"{stem}-{k}.wav"
            sf.write(target, wave[k * size:(k + 1) * size], rate, subtype="PCM_16")
            out.append(target)
        return out

    # ------------------------------------------------------------------------------------ portability

    # The log-mel features sit inside the graph, so it takes a waveform. Measured with torch 2.14: the
    # TorchScript exporter refuses the complex STFT `log_mel` computes ("STFT does not currently support
    # complex types"); the dynamo exporter (onnxscript) turns it into ONNX's STFT (opset 17) and matches
    # PyTorch within 2.4e-6 on the shipped speech_commands model.
    onnx_exporter = "dynamo"
    onnx_fixed_transforms = True   # the mel filterbank: in int8, 94.0% -> 84.7% on speech_commands

    def example_inputs(self, config: SpeechConfig) -> tuple:
        return (torch.zeros(1, config.clip_samples),)

    def onnx_input_names(self, config: SpeechConfig) -> tuple[str]:
        return ("waveform",)

    def export_module(self, model, config: SpeechConfig):
        return WaveformModel(model, config)

    def onnx_inputs(self, config: SpeechConfig, raw) -> tuple:
        """The clip as `listen` decodes it (mono, the model's rate and length), a batch of one."""
        heard = raw if isinstance(raw, Heard) and raw.config == config else listen(config, raw)
        return (heard.waveform.float().unsqueeze(0),)

    def onnx_usage(self, config: SpeechConfig) -> list[str]:
        rate, samples = config.sample_rate, config.clip_samples
        return ["import wave",
                f'with wave.open("clip.wav") as f:   # 16-bit mono at {rate} Hz (resample others first)',
                "    x = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).astype(np.float32) / 32768",
                f"start = max(0, (len(x) - {samples}) // 2)   # it hears {config.clip_seconds:g} s: here a longer clip's "
                "middle (Triptych's reader takes its loudest window), a shorter one centred in silence",
                f"x = x[start:start + {samples}]",
                f"x = np.pad(x, (({samples} - len(x)) // 2, {samples} - len(x) - ({samples} - len(x)) // 2))",
                'inputs = {"waveform": x[None]}']

    def limitations(self, config: dict) -> list[str]:
        pre = config.get("preprocessing", {})
        return [f"It hears {pre.get('clip_seconds', 1)} s of mono audio at {pre.get('sample_rate')} Hz; longer "
                "clips are heard through one window. Accuracy on voices, accents and microphones unlike those of "
                "the training speakers will be lower."]


class WaveformModel(nn.Module):
    """The speech model with its features in front, for export: waveform (batch, samples) -> logits,
    through the float16 cache format and `make_batch`, exactly as `listen` gives the demo's clips."""

    def __init__(self, model: nn.Module, config: SpeechConfig):
        super().__init__()
        self.model, self.config = model, config

    def forward(self, waveform):
        (features,) = make_batch(self.config, waveform.to(torch.float16), None, train=False)
        return self.model(features)


TASK = SpeechTask()
