"""Log-mel features, computed per batch on the device that runs the model (training and the demo alike).

A change to what this computes changes what every checkpoint hears: bump `SpeechTask.feature_version`.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from training.tasks.speech.config import SpeechConfig


@lru_cache(maxsize=16)
def mel_transform(sample_rate: int, win: int, hop: int, n_mels: int, f_min: float, f_max: float, device: str):
    """(batch, samples) -> (batch, n_mels, frames) mel power spectrogram: torchaudio's MelSpectrogram (Hann
    window, reflect padding, HTK mel scale), built once per settings and device, with the power spectrum
    taken as re^2 + im^2 of a real view of the STFT: equal to torchaudio's |z|^2 within float rounding
    (3e-7 relative), and 3x cheaper than its complex abs() then square (bench/RESULTS.md, speech training)."""
    import torchaudio

    n_fft = 1 << (win - 1).bit_length()
    window = torch.hann_window(win, device=device)
    fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm=None,
                                               mel_scale="htk").to(device)

    def transform(waveform: torch.Tensor) -> torch.Tensor:
        z = torch.view_as_real(torch.stft(waveform, n_fft, hop, win, window, center=True, pad_mode="reflect",
                                          normalized=False, onesided=True, return_complex=True))
        power = z[..., 0].square() + z[..., 1].square()
        return torch.matmul(power.transpose(-1, -2), fb).transpose(-1, -2)

    return transform


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
