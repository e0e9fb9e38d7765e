"""Log-mel features, computed per batch on the device that runs the model (training and the demo alike).

A change to what this computes changes what every checkpoint hears: bump `SpeechTask.feature_version`.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from training.tasks.speech.config import SpeechConfig


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
