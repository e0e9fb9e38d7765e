"""Corrupted copies of clips, to measure how a model holds up in rooms, on phones and in noise:
`python -m training evaluate ... --corrupt reverb|noise|telephone`.

Each corruption is deterministic (seeded), works on the cached waveforms (batch, samples) at the model's
rate, and keeps each clip's length and loudness:
- reverb:    convolved with a synthetic room impulse response (direct path plus exponentially decaying
             noise, RT60 0.5 s: a living room);
- noise:     white noise at a 10 dB signal-to-noise ratio, per clip;
- telephone: the narrow band of a phone line: down to 8 kHz and back, then 300-3400 Hz band-pass.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF

CORRUPTIONS = ("reverb", "noise", "telephone")
RT60 = 0.5              # seconds for the reverberation to decay by 60 dB
NOISE_SNR_DB = 10.0
PHONE_RATE, PHONE_LOW, PHONE_HIGH = 8000, 300.0, 3400.0


def corrupt(waves: torch.Tensor, sample_rate: int, name: str, seed: int = 0) -> torch.Tensor:
    """`waves` (batch, samples) corrupted by `name` (one of CORRUPTIONS), same shape and dtype."""
    if name not in CORRUPTIONS:
        raise ValueError(f"--corrupt {name!r}: the speech task's corruptions are {', '.join(CORRUPTIONS)}.")
    x = waves.float()
    g = torch.Generator().manual_seed(seed)
    if name == "reverb":
        y = reverb(x, sample_rate, g)
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


def reverb(x: torch.Tensor, sample_rate: int, g: torch.Generator, rt60: float = RT60) -> torch.Tensor:
    ir = room_impulse_response(sample_rate, g, rt60).to(x.device)
    wet = AF.fftconvolve(x, ir[None])[..., : x.shape[-1]]
    return wet * (rms(x) / rms(wet).clamp(min=1e-8))          # as loud as the dry clip


def add_noise(x: torch.Tensor, snr_db: float, g: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=g).to(x.device)
    return x + noise * (rms(x) / 10 ** (snr_db / 20))          # rms(noise) is ~1


def telephone(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    y = x
    if sample_rate > PHONE_RATE:
        y = AF.resample(AF.resample(y, sample_rate, PHONE_RATE), PHONE_RATE, sample_rate)[..., : x.shape[-1]]
    y = AF.lowpass_biquad(AF.highpass_biquad(y, sample_rate, PHONE_LOW), sample_rate, PHONE_HIGH)
    return y * (rms(x) / rms(y).clamp(min=1e-8))


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=-1, keepdim=True).sqrt()
