"""Audio decoding, the one decoder for training and the demo: any clip -> a fixed-length mono waveform.

soundfile decodes it (WAV, FLAC, OGG, MP3, and no other container; no FFmpeg), channels are averaged to mono, samples become
float32 in [-1, 1], torchaudio resamples to the model's rate, and the clip is cut or padded to a fixed
length. A clip longer than that length is heard through its loudest window (the word, not the silence
around it); a shorter one is centred in silence. A change to what this computes changes what every
checkpoint hears: bump `SpeechTask.feature_version` with it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from training.tasks.base import InputError

MIN_RATE, MAX_RATE = 4_000, 384_000
MIN_SECONDS = 0.05            # shorter than the shortest spoken digit (0.14 s in FSDD) by a wide margin
# Decoding reads at most this much of a file, so a 10-minute upload costs the same as a 30-second one;
# the model then hears the loudest `clip_seconds` of it. The sample budget (30 s of 48 kHz stereo, 11 MB
# as float32) also bounds what a forged header (64 channels at 384 kHz) can make the decoder allocate.
MAX_READ_SECONDS = 30.0
MAX_READ_SAMPLES = int(MAX_READ_SECONDS * 48_000 * 2)
MAX_CHANNELS = 64
# The containers decoded, by libsndfile's names: nothing else is handed to it, whatever a file is called
# (it parses some 25 formats: AIFF, CAF, Sphere, MAT, ...). The first bytes are checked before libsndfile
# sees the file, and the format it then reports after.
AUDIO_FORMATS = ("WAV", "WAVEX", "RF64", "FLAC", "OGG", "MP3")
NOT_AUDIO = "This file is not audio that can be read (WAV, FLAC, OGG or MP3)."


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
            raise InputError("The audio file is missing.")
        if path.stat().st_size == 0:
            raise InputError("The file is empty (0 bytes), not audio.")
        return file_samples(str(path), max_seconds)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise InputError("The file is empty (0 bytes), not audio.")
        return file_samples(io.BytesIO(bytes(source)), max_seconds)
    raise InputError("No audio was given.")


def container(head: bytes) -> str | None:
    """The AUDIO_FORMATS container that a file's first 12 bytes announce, or None."""
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"RF64":
        return "RF64"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if head[:3] == b"ID3" or len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:   # MPEG frame sync
        return "MP3"
    return None


def file_samples(file, max_seconds: float) -> tuple[np.ndarray, int, float]:
    import soundfile as sf

    if isinstance(file, io.BytesIO):
        head = file.getvalue()[:12]
    else:
        with open(file, "rb") as f:
            head = f.read(12)
    if container(head) is None:
        raise InputError(NOT_AUDIO)
    try:
        with sf.SoundFile(file) as f:
            if f.format not in AUDIO_FORMATS:
                raise InputError(NOT_AUDIO)
            rate, frames = int(f.samplerate), f.frames
            check_rate(rate)
            if f.channels > MAX_CHANNELS:
                raise InputError(f"The audio has {f.channels} channels; at most {MAX_CHANNELS} are accepted.")
            budget = min(int(max_seconds * rate), MAX_READ_SAMPLES // f.channels)
            data = f.read(frames=budget, dtype="float32", always_2d=True)
    except InputError:
        raise
    except sf.LibsndfileError as e:
        if "ormat not recognised" in str(e) or "nrecognised" in str(e):
            raise InputError(NOT_AUDIO) from None
        raise InputError(f"The audio file is damaged or cannot be decoded ({e.error_string}).") from None
    except (RuntimeError, ValueError, TypeError, OSError, EOFError) as e:
        raise InputError(f"The audio file is damaged or cannot be decoded ({e}).") from None
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
        raise InputError("The audio must be (sample rate, array of samples).") from None
    check_rate(rate)
    if a.dtype.kind not in "iuf" or a.ndim not in (1, 2):
        raise InputError("The audio array must hold numbers, shaped (samples,) or (samples, channels).")
    if a.size == 0:   # checked before the reshape below, which cannot infer a shape from no samples
        raise InputError("The audio is empty (0 samples).")
    if a.ndim == 2 and a.shape[1] > MAX_CHANNELS and a.shape[0] <= MAX_CHANNELS:
        a = a.T   # (channels, samples), as torchaudio lays audio out
    a = a.reshape(len(a), -1)
    if a.shape[1] > MAX_CHANNELS:
        raise InputError(f"The audio has {a.shape[1]} channels; at most {MAX_CHANNELS} are accepted.")
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
        raise InputError(f"The sample rate is {rate} Hz; rates from {MIN_RATE // 1000} kHz to "
                              f"{MAX_RATE // 1000} kHz are supported.")


def to_mono(data: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Float (n, channels) -> finite mono float32 in [-1, 1], with notes on what had to be repaired."""
    notes = []
    bad = ~np.isfinite(data)
    if bad.any():
        if bad.all():
            raise InputError(f"The audio has no valid samples: all {bad.size} are NaN or infinite.")
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
    Raises InputError, with a sentence a user can act on, for anything that is not usable audio.
    """
    data, rate, total = read_samples(source, max(MAX_READ_SECONDS, max_seconds))
    if len(data) == 0:
        raise InputError("The audio is empty (0 samples).")
    mono, notes = to_mono(data)
    if len(mono) / rate < MIN_SECONDS:
        raise InputError(f"The audio is only {len(mono)} samples ({len(mono) / rate:.3f} s) long; at least "
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
