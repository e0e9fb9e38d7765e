"""Train-time speech augmentation, batched: time shift, background noise, time/frequency stretch, SpecAugment.

The background noise comes from the training split itself where it has some (Speech Commands'
`_background_noise_` / `_silence_` clips, kept by `collect_noise`), else coloured noise is generated.
"""

from __future__ import annotations

from pathlib import Path

import torch

from training.tasks.speech.config import SpeechConfig

# Folders whose clips are background noise in Speech Commands (`_silence_` in the 12-class layout,
# `_background_noise_` in the original archive): the noise mixed into other clips during training.
NOISE_FOLDERS = ("_silence_", "_background_noise_")
MAX_NOISE_CLIPS = 32


def collect_noise(config: SpeechConfig, train_inputs, encode) -> torch.Tensor | None:
    """Up to MAX_NOISE_CLIPS background-noise clips of the training split, through `encode`, stacked."""
    noise = []
    for raw in train_inputs:
        path = raw.get("path") if isinstance(raw, dict) else raw if isinstance(raw, str) else None
        if path and any(part in NOISE_FOLDERS for part in Path(str(path)).parts[:-1]):
            noise.append(encode(config, raw))
            if len(noise) == MAX_NOISE_CLIPS:
                break
    return torch.stack(noise) if noise else None


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


REVERB_RT60 = (0.2, 0.8)      # seconds: a small room to a large hall
CLIP_LEVEL = (0.3, 0.8)       # share of a clip's peak where an overdriven microphone clips it


def room_and_channel(config: SpeechConfig, x: torch.Tensor, generator) -> torch.Tensor:
    """Rooms, microphones and lines: each clip, with the configured probabilities, reverberated (one random
    room per batch), band-limited like a telephone, clipped, and given a random gain. The same functions
    make `evaluate --corrupt`'s copies (training/tasks/speech/corrupt.py), here with random strengths."""
    from training.tasks.speech.corrupt import reverb, room_impulse_response, telephone

    b = x.shape[0]

    def chosen(p: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) < p).to(x.device)[:, None]

    def some(mask: torch.Tensor, effect) -> torch.Tensor:   # the effect on the chosen clips only
        rows = mask[:, 0].nonzero()[:, 0]
        return x if len(rows) == 0 else x.index_copy(0, rows, effect(x[rows]))

    if config.reverb_prob > 0:
        lo, hi = REVERB_RT60
        rt60 = lo + (hi - lo) * float(torch.rand(1, generator=generator))
        room = room_impulse_response(config.sample_rate, generator, rt60)
        x = some(chosen(config.reverb_prob), lambda rows: reverb(rows, room))
    if config.band_prob > 0:
        x = some(chosen(config.band_prob), lambda rows: telephone(rows, config.sample_rate))
    if config.clip_prob > 0:
        lo, hi = CLIP_LEVEL
        level = (lo + (hi - lo) * torch.rand(b, 1, generator=generator)).to(x.device) * x.abs().amax(-1, keepdim=True)
        x = torch.where(chosen(config.clip_prob), torch.minimum(torch.maximum(x, -level), level), x)
    if config.gain_db > 0:
        db = (torch.rand(b, 1, generator=generator) * 2 - 1).to(x.device) * config.gain_db
        x = (x * 10 ** (db / 20)).clamp(-1.0, 1.0)
    return x
