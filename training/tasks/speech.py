"""Spoken-word recognition: audio decoding, log-mel features, augmentation and the model, defined once.

Every clip, in training and in the demo, goes through `load_audio`: soundfile decodes it (WAV, FLAC, OGG,
MP3; no FFmpeg), channels are averaged to mono, samples become float32 in [-1, 1], torchaudio resamples
to the model's rate, and the clip is cut or padded to a fixed length. A clip longer than that length is
heard through its loudest window (the word, not the silence around it); a shorter one is centred in
silence. Training caches these fixed-length waveforms as float16 and computes the features per batch on
the training device, where the augmentation (time shift, background noise, SpecAugment) also runs. The
demo calls `listen` (or `prepare`), which runs the same decoding and the same feature code.

The model is a small convolutional front end over the log-mel spectrogram followed by a bidirectional GRU
(or LSTM) over time: the convolutions learn local time-frequency patterns that survive a change of voice,
the recurrent layer reads the word in order.
"""

from __future__ import annotations

import argparse
import io
import math
import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from training.tasks import config_from_fields

NAME = "speech"
INPUT_COLUMNS = ("audio", "file", "path")
INPUT_FLAG = "--audio-column"

SAMPLE_RATE = 16_000          # Speech Commands' rate; speech below 8 kHz carries the words
CLIP_SECONDS = 1.0            # Speech Commands' clip length: one word
N_MELS = 40
MIN_RATE, MAX_RATE = 4_000, 384_000
MIN_SECONDS = 0.05            # shorter than the shortest spoken digit (0.14 s in FSDD) by a wide margin
# Decoding reads at most this much of a file, so a 10-minute upload costs the same as a 30-second one;
# the model then hears the loudest `clip_seconds` of it. The sample budget (30 s of 48 kHz stereo, 11 MB
# as float32) also bounds what a forged header (64 channels at 384 kHz) can make the decoder allocate.
MAX_READ_SECONDS = 30.0
MAX_READ_SAMPLES = int(MAX_READ_SECONDS * 48_000 * 2)
MAX_CHANNELS = 64
CELLS = ("gru", "lstm")
# Folders whose clips are background noise in Speech Commands (`_silence_` in the 12-class layout,
# `_background_noise_` in the original archive): the noise mixed into other clips during training.
NOISE_FOLDERS = ("_silence_", "_background_noise_")
MAX_NOISE_CLIPS = 32
NOISE_FILE = "train_noise.safetensors"

# Speech Commands' 12-class keyword layout: ten commands, silence and every other word as unknown.
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
KEYWORD_LABELS = (*COMMANDS, SILENCE, UNKNOWN)

# --init-from: settings that only change training (dropout and augmentation), taken from this run's arguments.
TRAIN_FIELDS = ("dropout", "time_shift_ms", "noise_prob", "snr_db", "stretch", "time_stretch", "freq_mask",
                "time_mask")

# Engine defaults: AdamW at 3e-3 with a short warm-up trains the recurrent layer stably from scratch in
# tens of epochs; gradient clipping guards the GRU against the occasional exploding step.
DEFAULTS = dict(epochs=40, batch_size=64, lr=3e-3, weight_decay=0.05, optimizer="adamw", label_smoothing=0.1,
                warmup_fraction=0.1, grad_clip=5.0, class_weights=False)


class AudioInputError(ValueError):
    """An input that is not usable audio; the message says why in words."""


@dataclass
class SpeechConfig:
    sample_rate: int = SAMPLE_RATE
    clip_seconds: float = CLIP_SECONDS
    n_mels: int = N_MELS
    win_ms: float = 25.0             # the usual speech analysis window and hop
    hop_ms: float = 10.0
    f_min: float = 20.0
    f_max: float | None = None       # None: half the sample rate
    top_db: float = 80.0             # floor of the log-mel, relative to the clip's loudest bin
    channels: int = 32               # convolution channels (the first layer has half)
    hidden_size: int = 64            # recurrent units per direction
    rnn_layers: int = 1
    cell: str = "gru"
    dropout: float = 0.1
    time_shift_ms: float = 100.0     # augmentation: random shift of up to this much either way
    noise_prob: float = 0.8          # augmentation: share of clips mixed with background noise
    snr_db: tuple = (5.0, 30.0)      # ... at a signal-to-noise ratio drawn from this range
    stretch: float = 0.1             # augmentation: random frequency stretch (vocal tract), up to +-10%
    time_stretch: float | None = None   # ... and time stretch (speaking rate); None: the same as stretch
    freq_mask: int = 7               # SpecAugment: widest frequency mask (mel bins) and time mask (frames)
    time_mask: int = 20
    noise: torch.Tensor | None = field(default=None, repr=False, compare=False)   # training only, not saved

    @property
    def architecture(self) -> str:
        return f"conv-bi{self.cell}"

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


# -------------------------------------------------------------------------------------------- flags

def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("speech")
    g.add_argument("--audio-column", default=None, help="input column (default: auto, audio, file or path)")
    g.add_argument("--sample-rate", type=int, default=SAMPLE_RATE,
                   help="rate every clip is resampled to, in Hz (default: %(default)s)")
    g.add_argument("--clip-seconds", type=float, default=CLIP_SECONDS,
                   help="length the model hears; longer clips are heard through their loudest window "
                        "(default: %(default)s)")
    g.add_argument("--n-mels", type=int, default=N_MELS, help="mel bins of the features (default: %(default)s)")
    g.add_argument("--channels", type=int, default=32, help="convolution channels (default: %(default)s)")
    g.add_argument("--hidden-size", type=int, default=64, help="recurrent units per direction (default: %(default)s)")
    g.add_argument("--rnn-layers", type=int, default=1, help="(default: %(default)s)")
    g.add_argument("--cell", choices=CELLS, default="gru", help="recurrent cell (default: %(default)s)")
    g.add_argument("--dropout", type=float, default=0.1, help="(default: %(default)s)")
    g.add_argument("--time-shift-ms", type=float, default=100.0,
                   help="augmentation: largest random time shift (default: %(default)s)")
    g.add_argument("--noise-prob", type=float, default=0.8,
                   help="augmentation: share of training clips mixed with background noise (default: %(default)s)")
    g.add_argument("--stretch", type=float, default=0.1,
                   help="augmentation: largest random time and frequency stretch, as a fraction (default: %(default)s)")
    g.add_argument("--time-stretch", type=float, default=None,
                   help="augmentation: largest random time stretch (speaking rate) if it should differ from "
                        "--stretch, e.g. for few speakers who talk at different speeds (default: --stretch)")
    g.add_argument("--keep-all-words", action="store_true",
                   help="train on every word of the full Speech Commands vocabulary instead of mapping it to "
                        "the 12-class keyword layout (10 commands, _silence_, _unknown_)")


def config_from_args(args: argparse.Namespace) -> SpeechConfig:
    if not MIN_RATE <= args.sample_rate <= 48_000:
        raise ValueError(f"--sample-rate {args.sample_rate}: choose a rate from {MIN_RATE} to 48000 Hz.")
    if not 0.1 <= args.clip_seconds <= 10:
        raise ValueError(f"--clip-seconds {args.clip_seconds}: choose from 0.1 to 10 seconds.")
    if not 8 <= args.n_mels <= 128:
        raise ValueError(f"--n-mels {args.n_mels}: choose from 8 to 128.")
    return SpeechConfig(sample_rate=args.sample_rate, clip_seconds=args.clip_seconds, n_mels=args.n_mels,
                        channels=args.channels, hidden_size=args.hidden_size, rnn_layers=args.rnn_layers,
                        cell=args.cell, dropout=args.dropout, time_shift_ms=args.time_shift_ms,
                        noise_prob=args.noise_prob, stretch=args.stretch,
                        time_stretch=args.time_stretch)


def config_from_dict(d: dict) -> SpeechConfig:
    config = config_from_fields(SpeechConfig, d, exclude=("noise",))
    config.snr_db = tuple(config.snr_db)
    if config.cell not in CELLS:
        raise ValueError(f"unknown cell {config.cell!r}")
    return config


def config_to_dict(config: SpeechConfig) -> dict:
    d = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "noise"}
    d["snr_db"] = list(d["snr_db"])
    return d


def preprocessing(config: SpeechConfig) -> dict:
    return {"sample_rate": config.sample_rate, "clip_seconds": config.clip_seconds, "channels": "mono (mean)",
            "long_clips": "loudest window of clip_seconds within the first "
                          f"{MAX_READ_SECONDS:g} s", "short_clips": "centred, zero-padded",
            "features": "log-mel, normalised per clip (mean 0, std 1)", "n_mels": config.n_mels,
            "win_ms": config.win_ms, "hop_ms": config.hop_ms, "f_min": config.f_min,
            "f_max": config.f_max or config.sample_rate / 2, "top_db": config.top_db,
            "train_augment": f"time shift +-{config.time_shift_ms:g} ms, background noise "
                             f"(p={config.noise_prob:g}, SNR {config.snr_db[0]:g}-{config.snr_db[1]:g} dB), "
                             + (f"time/frequency stretch +-{config.stretch:.0%}, " if config.time_stretch is None else
                                f"time stretch +-{config.time_stretch:.0%}, frequency stretch +-{config.stretch:.0%}, ")
                             + f"SpecAugment (F={config.freq_mask}, T={config.time_mask})"}


# ------------------------------------------------------------------------------------------- decoding

class AudioClip(NamedTuple):
    waveform: torch.Tensor   # (clip_samples,) float32 in [-1, 1] at the model's rate
    duration: float          # seconds of audio in the input (as far as it was read)
    start: float             # where the heard window starts in the input, in seconds
    notes: tuple             # what the user should know about the input (sentences)


def read_samples(source, max_seconds: float) -> tuple[np.ndarray, int, float]:
    """(samples (n, channels) float32, sample rate, total seconds) of at most `max_seconds` of `source`.

    `source`: a path, bytes, a `datasets` {"bytes", "path"} dict, or (sample_rate, array) as Gradio and
    soundfile use, the array (samples,) or (samples, channels) of any integer or float type.
    """
    if isinstance(source, dict):
        source = source.get("bytes") or source.get("path")
    if isinstance(source, tuple) and len(source) == 2:
        return array_samples(*source, max_seconds=max_seconds)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AudioInputError("The audio file is missing.")
        if path.stat().st_size == 0:
            raise AudioInputError("The file is empty (0 bytes), not audio.")
        return file_samples(str(path), max_seconds)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioInputError("The file is empty (0 bytes), not audio.")
        return file_samples(io.BytesIO(bytes(source)), max_seconds)
    raise AudioInputError("No audio was given.")


def file_samples(file, max_seconds: float) -> tuple[np.ndarray, int, float]:
    import soundfile as sf

    try:
        with sf.SoundFile(file) as f:
            rate, frames = int(f.samplerate), f.frames
            check_rate(rate)
            if f.channels > MAX_CHANNELS:
                raise AudioInputError(f"The audio has {f.channels} channels; at most {MAX_CHANNELS} are accepted.")
            budget = min(int(max_seconds * rate), MAX_READ_SAMPLES // f.channels)
            data = f.read(frames=budget, dtype="float32", always_2d=True)
    except AudioInputError:
        raise
    except sf.LibsndfileError as e:
        if "ormat not recognised" in str(e) or "nrecognised" in str(e):
            raise AudioInputError("This file is not audio that can be read (WAV, FLAC, OGG or MP3).") from None
        raise AudioInputError(f"The audio file is damaged or cannot be decoded ({e.error_string}).") from None
    except (RuntimeError, ValueError, TypeError, OSError, EOFError) as e:
        raise AudioInputError(f"The audio file is damaged or cannot be decoded ({e}).") from None
    # The header's length counts only when reading stopped at the budget; a header that claims more
    # than the file holds (a truncated upload, a forged size) is trusted no further than what was read.
    total = frames / rate if len(data) == budget and frames > budget else len(data) / rate
    return data, rate, total


def array_samples(rate, array, *, max_seconds: float) -> tuple[np.ndarray, int, float]:
    """(sample_rate, array) -> float32 (n, channels): integers scaled by their full range."""
    try:
        rate = int(rate)
        a = np.asarray(array)
    except (TypeError, ValueError):
        raise AudioInputError("The audio must be (sample rate, array of samples).") from None
    check_rate(rate)
    if a.dtype.kind not in "iuf" or a.ndim not in (1, 2):
        raise AudioInputError("The audio array must hold numbers, shaped (samples,) or (samples, channels).")
    if a.size == 0:   # checked before the reshape below, which cannot infer a shape from no samples
        raise AudioInputError("The audio is empty (0 samples).")
    if a.ndim == 2 and a.shape[1] > MAX_CHANNELS and a.shape[0] <= MAX_CHANNELS:
        a = a.T   # (channels, samples), as torchaudio lays audio out
    a = a.reshape(len(a), -1)
    if a.shape[1] > MAX_CHANNELS:
        raise AudioInputError(f"The audio has {a.shape[1]} channels; at most {MAX_CHANNELS} are accepted.")
    total = len(a) / rate
    a = a[: min(int(max_seconds * rate), MAX_READ_SAMPLES // a.shape[1])]
    if a.dtype.kind == "i":
        a = a.astype(np.float32) / float(2 ** (8 * a.dtype.itemsize - 1))
    elif a.dtype.kind == "u":
        half = float(2 ** (8 * a.dtype.itemsize - 1))
        a = (a.astype(np.float64) - half).astype(np.float32) / half
    return a.astype(np.float32, copy=False), rate, total


def check_rate(rate: int) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioInputError(f"The sample rate is {rate} Hz; rates from {MIN_RATE // 1000} kHz to "
                              f"{MAX_RATE // 1000} kHz are supported.")


def to_mono(data: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Float (n, channels) -> finite mono float32 in [-1, 1], with notes on what had to be repaired."""
    notes = []
    bad = ~np.isfinite(data)
    if bad.any():
        if bad.all():
            raise AudioInputError(f"The audio has no valid samples: all {bad.size} are NaN or infinite.")
        data = np.where(bad, 0.0, data).astype(np.float32)
        notes.append(f"{int(bad.sum())} NaN or infinite samples were set to 0.")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0].copy()
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    if peak > 1.0:   # float files may exceed full scale; scale rather than clip, to keep the shape
        mono /= peak
        notes.append("The samples went beyond full scale and were scaled down.")
    return mono, notes


def resample(x: torch.Tensor, rate: int, target: int) -> torch.Tensor:
    """torchaudio's windowed-sinc resampling. Rates that share no factor with the target (44101 Hz) would
    need a filter bank of millions of taps, so rates are taken to the nearest 100 Hz first: a pitch error
    below 1.3% even at 4 kHz, far below what changes a word."""
    import torchaudio.functional as AF

    if rate == target:
        return x
    if rate % 100:
        rate = max(100, int(round(rate / 100)) * 100)
        if rate == target:
            return x
    return AF.resample(x, rate, target)


def loudest_window(x: torch.Tensor, size: int, hop: int) -> int:
    """Start of the `size`-sample window with the most energy, searched every `hop` samples."""
    energy = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(x.double() ** 2, 0)])
    starts = torch.arange(0, len(x) - size + 1, max(1, hop))
    sums = energy[starts + size] - energy[starts]
    return int(starts[int(torch.argmax(sums))])


def load_audio(source, sample_rate: int, max_seconds: float) -> AudioClip:
    """Decode `source` and return exactly `max_seconds` of mono float32 audio at `sample_rate`.

    The one decoder of the project, for training and for the demo. A longer input is heard through its
    loudest `max_seconds` window within the first MAX_READ_SECONDS (less for more than two channels or
    rates above 48 kHz: see MAX_READ_SAMPLES); a shorter one is centred in silence.
    Raises AudioInputError, with a sentence a user can act on, for anything that is not usable audio.
    """
    data, rate, total = read_samples(source, max(MAX_READ_SECONDS, max_seconds))
    if len(data) == 0:
        raise AudioInputError("The audio is empty (0 samples).")
    mono, notes = to_mono(data)
    if len(mono) / rate < MIN_SECONDS:
        raise AudioInputError(f"The audio is only {len(mono)} samples ({len(mono) / rate:.3f} s) long; at least "
                              f"{MIN_SECONDS:g} s is needed to hear a word.")
    x = resample(torch.from_numpy(mono), rate, sample_rate)
    size = int(round(max_seconds * sample_rate))
    start = 0
    if len(x) >= size:
        start = loudest_window(x, size, hop=sample_rate // 100)
        x = x[start:start + size]
    else:
        left = (size - len(x)) // 2
        x = torch.nn.functional.pad(x, (left, size - len(x) - left))
    if total > max_seconds + 0.05:
        read = len(mono) / rate
        where = f"its first {read:g} s" if total > read + 0.01 else "the clip"
        notes.append(f"The clip is {total:.1f} s long; the model heard {max_seconds:g} s of it, the loudest "
                     f"window of {where}: {start / sample_rate:.2f} s to {(start + size) / sample_rate:.2f} s.")
    if float(x.abs().max()) < 1e-4:
        notes.append("The clip is silent (quieter than -80 dB full scale).")
    return AudioClip(x.float().contiguous(), total, start / sample_rate, tuple(notes))


def encode(config: SpeechConfig, raw) -> torch.Tensor:
    # float16 halves the cache; its 11-bit mantissa keeps quiet clips intact, where int16 would not.
    return load_audio(raw, config.sample_rate, config.clip_seconds).waveform.to(torch.float16)


# ------------------------------------------------------------------------------------------- features

@lru_cache(maxsize=16)
def mel_transform(sample_rate: int, win: int, hop: int, n_mels: int, f_min: float, f_max: float, device: str):
    """One MelSpectrogram per settings and device, built once: its filter bank is a constant."""
    import torchaudio

    n_fft = 1 << (win - 1).bit_length()
    return torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, win_length=win,
                                                hop_length=hop, f_min=f_min, f_max=f_max, n_mels=n_mels,
                                                power=2.0, mel_scale="htk").to(device)


def log_mel(config: SpeechConfig, waveform: torch.Tensor) -> torch.Tensor:
    """(batch, samples) -> (batch, n_mels, frames): log-mel in dB, floored at top_db below the clip's peak
    and normalised per clip, so the microphone's gain does not matter."""
    sr = config.sample_rate
    mel = mel_transform(sr, int(round(sr * config.win_ms / 1000)), int(round(sr * config.hop_ms / 1000)),
                        config.n_mels, float(config.f_min), float(config.f_max or sr / 2),
                        str(waveform.device))(waveform.float())
    db = 10.0 * torch.log10(mel.clamp_min(1e-10))
    db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - config.top_db)
    mean = db.mean(dim=(-2, -1), keepdim=True)
    std = db.std(dim=(-2, -1), keepdim=True)
    return (db - mean) / (std + 1e-5)


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


# -------------------------------------------------------------------------------------- augmentation

def fit(config: SpeechConfig, train_inputs) -> SpeechConfig:
    """Keep up to MAX_NOISE_CLIPS background-noise clips of the training split for noise mixing."""
    noise = []
    for raw in train_inputs:
        path = raw.get("path") if isinstance(raw, dict) else raw if isinstance(raw, str) else None
        if path and any(part in NOISE_FOLDERS for part in Path(str(path)).parts[:-1]):
            noise.append(encode(config, raw))
            if len(noise) == MAX_NOISE_CLIPS:
                break
    config.noise = torch.stack(noise) if noise else None
    return config


def save_extra(config: SpeechConfig, folder) -> None:
    if config.noise is not None:   # only for --resume; the demo never needs it
        from safetensors.torch import save_file
        from training.checkpoint import atomic_write

        atomic_write(Path(folder) / NOISE_FILE, lambda tmp: save_file({"noise": config.noise.contiguous()}, tmp))


def load_extra(config: SpeechConfig, folder) -> None:
    path = Path(folder) / NOISE_FILE
    if path.is_file():
        from safetensors.torch import load_file
        config.noise = load_file(path)["noise"]


def time_shift(x: torch.Tensor, max_shift: int, generator) -> torch.Tensor:
    """Shift each clip by up to `max_shift` samples either way, filling with silence."""
    if max_shift <= 0:
        return x
    b, n = x.shape
    offset = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator).to(x.device)
    padded = torch.nn.functional.pad(x, (max_shift, max_shift))
    index = offset[:, None] + torch.arange(n, device=x.device)
    return padded.gather(1, index)


def noise_like(config: SpeechConfig, b: int, n: int, generator) -> torch.Tensor:
    """`b` noise clips: slices of the dataset's background noise, else coloured noise (white to brown)."""
    if config.noise is not None and len(config.noise):
        bank = config.noise.float()
        which = torch.randint(0, len(bank), (b,), generator=generator)
        shift = torch.randint(0, bank.shape[1], (b,), generator=generator)
        if n <= bank.shape[1]:
            # The same slices as the wrapped gather below, as row copies from a strided view of the bank
            # followed by its start: 4x faster (12 vs 51 ms for 64 one-second clips, bench/train.py).
            return torch.cat([bank, bank[:, : n - 1]], 1).unfold(1, n, 1)[which, shift]
        index = (shift[:, None] + torch.arange(n)) % bank.shape[1]
        return bank[which[:, None], index]
    white = torch.randn(b, n, generator=generator)
    slope = torch.rand(b, 1, generator=generator) * 2.0          # 0 white, 1 pink, 2 brown
    freqs = torch.fft.rfftfreq(n).clamp_min(1.0 / n)
    return torch.fft.irfft(torch.fft.rfft(white) * freqs ** (-slope / 2), n=n)


def add_noise(config: SpeechConfig, x: torch.Tensor, generator) -> torch.Tensor:
    b, n = x.shape
    noise = noise_like(config, b, n, generator).to(x.device)
    lo, hi = config.snr_db
    snr = (lo + (hi - lo) * torch.rand(b, 1, generator=generator)).to(x.device)
    use = (torch.rand(b, 1, generator=generator) < config.noise_prob).to(x.device)
    signal_rms = x.pow(2).mean(1, keepdim=True).sqrt()
    noise_rms = noise.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-8)
    scale = signal_rms / noise_rms * 10 ** (-snr / 20)
    return x + torch.where(use, scale, torch.zeros_like(scale)) * noise


def stretch(features: torch.Tensor, amount: float, generator, time_amount: float | None = None) -> torch.Tensor:
    """Stretch each clip's spectrogram in time (speaking rate) and in frequency about 0 Hz (vocal tract
    length, as in VTLP, Jaitly and Hinton 2013) by random factors within 1 +- `time_amount` (default
    `amount`) and 1 +- `amount`."""
    time_amount = amount if time_amount is None else time_amount
    if amount <= 0 and time_amount <= 0:
        return features
    b = features.shape[0]
    amounts = torch.tensor([time_amount, amount])
    scale = 1 + amounts * (2 * torch.rand(b, 2, generator=generator) - 1)     # (time, frequency)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = scale[:, 0]
    theta[:, 1, 1] = scale[:, 1]
    theta[:, 1, 2] = scale[:, 1] - 1          # keep the lowest mel bin in place
    grid = torch.nn.functional.affine_grid(theta, (b, 1, *features.shape[1:]), align_corners=True)
    out = torch.nn.functional.grid_sample(features.unsqueeze(1), grid.to(features.device), mode="bilinear",
                                          padding_mode="border", align_corners=True)
    return out.squeeze(1)


def spec_augment(config: SpeechConfig, features: torch.Tensor) -> torch.Tensor:
    """One frequency and one time mask per clip (Park et al., 2019), drawn independently per clip."""
    import torchaudio

    x = features.unsqueeze(1)   # iid_masks needs (batch, channel, freq, time)
    if config.freq_mask:
        x = torchaudio.transforms.FrequencyMasking(config.freq_mask, iid_masks=True)(x)
    if config.time_mask:
        x = torchaudio.transforms.TimeMasking(config.time_mask, iid_masks=True)(x)
    return x.squeeze(1)


def make_batch(config: SpeechConfig, data: torch.Tensor, lengths, *, train: bool,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor]:
    """Cached waveforms (batch, samples) -> (log-mel features,), augmented when training."""
    x = data.float()
    if train:
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        x = time_shift(x, int(config.sample_rate * config.time_shift_ms / 1000), generator)
        if config.noise_prob > 0:
            x = add_noise(config, x, generator)
    features = log_mel(config, x)
    if train:
        features = spec_augment(config, stretch(features, config.stretch, generator, config.time_stretch))
    return (features,)


# ---------------------------------------------------------------------------------------------- model

def conv_block(cin: int, cout: int, stride) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SpeechRecognizer(nn.Module):
    """Two 3x3 conv layers (frequency / 4, time / 2), a bidirectional GRU or LSTM over the frames, mean
    and max pooling over time, and a linear classifier. About 0.16 M parameters at the default sizes."""

    def __init__(self, num_labels: int, n_mels: int, channels: int = 32, hidden_size: int = 64,
                 rnn_layers: int = 1, cell: str = "gru", dropout: float = 0.1):
        super().__init__()
        # Striding from the first layer: (frequency / 4, time / 2) costs a third of full-resolution layers on
        # a CPU and loses no accuracy that a 20 ms frame rate can carry for one word.
        self.front = nn.Sequential(conv_block(1, channels // 2, (2, 2)), conv_block(channels // 2, channels, (2, 1)))
        freq = math.ceil(math.ceil(n_mels / 2) / 2)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(channels * freq, hidden_size, rnn_layers, batch_first=True, bidirectional=True,
                       dropout=dropout if rnn_layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden_size, num_labels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.front(features.unsqueeze(1))              # batch, channels, freq, frames
        b, c, f, t = x.shape
        x, _ = self.rnn(x.permute(0, 3, 1, 2).reshape(b, t, c * f))
        return self.head(torch.cat([x.mean(1), x.amax(1)], dim=1))


def build_model(config: SpeechConfig, num_labels: int, *, pretrained: bool = False) -> nn.Module:
    return SpeechRecognizer(num_labels, config.n_mels, config.channels, config.hidden_size, config.rnn_layers,
                            config.cell, config.dropout)


# ------------------------------------------------------------------------------------ dataset adapter

def adapt_dataset(raw, args):
    """Map the full Speech Commands vocabulary (35 words and `_silence_`, as on the Hub) to the 12-class
    keyword layout of its benchmark: the ten commands, `_silence_`, and every other word as `_unknown_`.

    Datasets that already have 12 labels (the canonical test set), or any other labels, pass unchanged,
    as does everything with --keep-all-words.
    """
    if getattr(args, "keep_all_words", False):
        return raw
    seed = getattr(args, "seed", 0)
    out = {}
    for split, ds in raw.items():
        names = label_feature_names(ds)
        if names is None or set(names) <= set(KEYWORD_LABELS) or not set(COMMANDS) <= set(names):
            return raw
        ds = chunk_background_noise(ds, names, getattr(args, "clip_seconds", CLIP_SECONDS))
        out[split] = to_keywords(ds, names, seed)
    import datasets
    return datasets.DatasetDict(out)


def label_feature_names(ds) -> list[str] | None:
    feature = ds.features.get("label")
    return list(feature.names) if hasattr(feature, "names") else None


def to_keywords(ds, names: list[str], seed: int):
    """Relabel to KEYWORD_LABELS; keep as many `_unknown_` rows as the largest command has, so that
    unknown words do not outnumber the commands nine to one (the benchmark's sets are balanced)."""
    import datasets

    new = [KEYWORD_LABELS.index(n) if n in KEYWORD_LABELS else KEYWORD_LABELS.index(UNKNOWN) for n in names]
    ids = np.array([new[i] for i in ds["label"]], dtype=np.int64)
    ds = ds.remove_columns("label").add_column("label", ids.tolist(),
                                               feature=datasets.ClassLabel(names=list(KEYWORD_LABELS)))
    unknown = np.flatnonzero(ids == KEYWORD_LABELS.index(UNKNOWN))
    largest = max(int((ids == i).sum()) for i in range(len(COMMANDS)))
    if len(unknown) > largest > 0:
        drop = np.random.default_rng(seed).permutation(unknown)[largest:]
        keep = np.setdiff1d(np.arange(len(ids)), drop)
        ds = ds.select(keep.tolist())
    return ds


def chunk_background_noise(ds, names: list[str], clip_seconds: float):
    """The Hub's training `_silence_` rows are six background recordings of a minute or more; cut each
    into clip-length pieces, as the benchmark does, so that silence is not six examples among thousands."""
    import datasets
    import soundfile as sf

    silence = names.index(SILENCE) if SILENCE in names else None
    audio_col = next((c for c in INPUT_COLUMNS if c in ds.column_names), None)
    if silence is None or audio_col is None:
        return ds
    ds = ds.cast_column(audio_col, datasets.Audio(decode=False))
    rows = [i for i, y in enumerate(ds["label"]) if y == silence]
    pieces = {c: [] for c in ds.column_names}
    long_rows = []
    for i in rows:
        row = ds[i]
        try:
            clip, rate = sf.read(io.BytesIO(row[audio_col]["bytes"]), dtype="float32", always_2d=True)
        except Exception:   # an unreadable row is left as it is; encode() will name the problem
            continue
        size = int(clip_seconds * rate)
        if len(clip) < 2 * size:
            continue
        long_rows.append(i)
        for k, s in enumerate(range(0, len(clip) - size + 1, size)):
            buf = io.BytesIO()
            sf.write(buf, clip[s:s + size], rate, format="WAV", subtype="PCM_16")
            source = row[audio_col].get("path") or f"noise{i}"
            for c in ds.column_names:
                value = {"bytes": buf.getvalue(), "path": f"{source}#{k}"} if c == audio_col else row[c]
                if c == "speaker_id" and not value:   # pieces of one recording stay one group
                    value = Path(source).stem
                pieces[c].append(value)
    if not long_rows:
        return ds
    kept = ds.select(sorted(set(range(len(ds))) - set(long_rows)))
    extra = datasets.Dataset.from_dict(pieces, features=kept.features)
    return datasets.concatenate_datasets([kept, extra])
