"""Corrupted copies of clips, to measure how a model holds up in rooms, on phones and in noise:
`python -m training evaluate ... --corrupt reverb|noise|telephone`.

Each corruption is deterministic (seeded), works on the cached waveforms (batch, samples) at the model's
rate, and keeps each clip's length and loudness:
- reverb:    convolved with a synthetic room impulse response (direct path plus exponentially decaying
             noise, RT60 0.5 s: a living room);
- noise:     white noise at a 10 dB signal-to-noise ratio, per clip;
- telephone: the narrow band of a phone line: nothing above 4 kHz (an 8 kHz line), and the magnitude
             response of a 300 Hz high-pass and a 3400 Hz low-pass biquad (Q 0.707), applied in the frequency
             domain (zero phase).
Both filters work in the frequency domain on FFT sizes that are powers of two: training applies them to
every batch (training/tasks/speech/augment.py), where time-domain IIR filters and resampling cost more than
the model's step.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from training.errors import SettingsError

CORRUPTIONS = ("reverb", "noise", "telephone")
RT60 = 0.5              # seconds for the reverberation to decay by 60 dB
NOISE_SNR_DB = 10.0
PHONE_RATE, PHONE_LOW, PHONE_HIGH = 8000, 300.0, 3400.0


def corrupt(waves: torch.Tensor, sample_rate: int, name: str, seed: int = 0) -> torch.Tensor:
    """`waves` (batch, samples) corrupted by `name` (one of CORRUPTIONS), same shape and dtype."""
    if name not in CORRUPTIONS:
        raise SettingsError(f"--corrupt {name!r}: the speech task's corruptions are {', '.join(CORRUPTIONS)}.")
    x = waves.float()
    g = torch.Generator().manual_seed(seed)
    if name == "reverb":
        y = reverb(x, room_impulse_response(sample_rate, g))
    elif name == "noise":
        y = add_noise(x, NOISE_SNR_DB, g)
    else:
        y = telephone(x, sample_rate)
    return y.clamp(-1.0, 1.0).to(waves.dtype)


def room_impulse_response(sample_rate: int, g: torch.Generator, rt60: float = RT60) -> torch.Tensor:
    """Direct path plus exponentially decaying noise that falls 60 dB in `rt60` seconds, unit energy."""
    t = torch.arange(int(sample_rate * rt60)) / sample_rate
    ir = torch.randn(len(t), generator=g) * torch.exp(-6.908 * t / rt60) * 0.3   # 6.908 = ln(1000): -60 dB
    ir[0] = 1.0                                                                    # the direct path
    return ir / ir.norm()


def reverb(x: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """`x` in the room whose impulse response is `ir`, as loud as it was."""
    ir = ir.to(x.device)
    n = fft_size(x.shape[-1] + len(ir) - 1)
    wet = torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(ir, n), n)[..., : x.shape[-1]]
    return wet * (rms(x) / rms(wet).clamp(min=1e-8))          # as loud as the dry clip


def fft_size(n: int) -> int:
    return 1 << (n - 1).bit_length()


def add_noise(x: torch.Tensor, snr_db: float, g: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=g).to(x.device)
    return x + noise * (rms(x) / 10 ** (snr_db / 20))          # rms(noise) is ~1


def telephone(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    n = fft_size(2 * x.shape[-1])          # room for the filters' decay: no wrap-around
    y = torch.fft.irfft(torch.fft.rfft(x, n) * phone_response(sample_rate, n, x.device), n)[..., : x.shape[-1]]
    return y * (rms(x) / rms(y).clamp(min=1e-8))


@lru_cache(maxsize=8)
def phone_response(sample_rate: int, n: int, device) -> torch.Tensor:
    """The phone line's gain at each of rfft's n // 2 + 1 frequencies: |high-pass(300 Hz)| * |low-pass
    (3400 Hz)| (RBJ biquads, Q 0.707, as torchaudio's), and 0 above the 8 kHz line's 4 kHz."""
    f = torch.fft.rfftfreq(n, 1 / sample_rate, dtype=torch.float64)
    z = torch.exp(-2j * torch.pi * f / sample_rate)
    gain = torch.ones_like(f)
    for cutoff, high in ((PHONE_LOW, True), (PHONE_HIGH, False)):
        w0 = 2 * math.pi * cutoff / sample_rate
        cos, alpha = math.cos(w0), math.sin(w0) / (2 * 0.707)
        b0 = (1 + cos) / 2 if high else (1 - cos) / 2
        b = (b0, -2 * b0 if high else 2 * b0, b0)
        a = (1 + alpha, -2 * cos, 1 - alpha)
        gain = gain * ((b[0] + b[1] * z + b[2] * z ** 2) / (a[0] + a[1] * z + a[2] * z ** 2)).abs()
    if sample_rate > PHONE_RATE:
        gain = torch.where(f <= PHONE_RATE / 2, gain, torch.zeros_like(gain))
    return gain.to(device=device, dtype=torch.float32)


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=-1, keepdim=True).sqrt()
