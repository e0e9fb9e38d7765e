"""The speech task's settings: one dataclass, whose `option` fields are also the `speech` command's flags."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from training.errors import SettingsError
from training.settings import option

SAMPLE_RATE = 16_000          # Speech Commands' rate; speech below 8 kHz carries the words
CLIP_SECONDS = 1.0            # Speech Commands' clip length: one word
N_MELS = 40
CELLS = ("gru", "lstm")
INPUT_COLUMNS = ("audio", "file", "path")


@dataclass
class SpeechConfig:
    sample_rate: int = option(SAMPLE_RATE, "rate every clip is resampled to, in Hz")
    clip_seconds: float = option(CLIP_SECONDS, "length the model hears; longer clips are heard through their "
                                               "loudest window")
    n_mels: int = option(N_MELS, "mel bins of the features")
    win_ms: float = 25.0             # the usual speech analysis window and hop
    hop_ms: float = 10.0
    f_min: float = 20.0
    f_max: float | None = None       # None: half the sample rate
    top_db: float = 80.0             # floor of the log-mel, relative to the clip's loudest bin
    channels: int = option(32, "convolution channels (the first layer has half)")
    hidden_size: int = option(64, "recurrent units per direction")
    rnn_layers: int = option(1, "stacked recurrent layers")
    cell: str = option("gru", "recurrent cell", choices=CELLS)
    dropout: float = option(0.1, "dropout before the classifier (and between recurrent layers)", role="train")
    time_shift_ms: float = option(100.0, "augmentation: largest random time shift", role="train")
    noise_prob: float = option(0.8, "augmentation: share of training clips mixed with background noise",
                               role="train")
    snr_db: tuple = option((5.0, 30.0), role="train")   # ... at a signal-to-noise ratio drawn from this range
    stretch: float = option(0.1, "augmentation: largest random time and frequency stretch, as a fraction",
                            role="train")
    time_stretch: float | None = option(None, "augmentation: largest random time stretch (speaking rate) if it "
                                              "should differ from --stretch, e.g. for few speakers who talk at "
                                              "different speeds (default: --stretch)", type=float, role="train")
    reverb_prob: float = option(0.0, "augmentation: share of training clips played in a synthetic room (reverberation "
                                     "time drawn from 0.2-0.8 s)", role="train")
    band_prob: float = option(0.0, "augmentation: share of training clips band-limited like a telephone line "
                                   "(8 kHz, 300-3400 Hz)", role="train")
    gain_db: float = option(0.0, "augmentation: largest random gain, in dB either way (a microphone's level)",
                            role="train")
    clip_prob: float = option(0.0, "augmentation: share of training clips hard-clipped at 30-80%% of their peak "
                                   "(an overdriven microphone)", role="train")
    freq_mask: int = option(7, role="train")   # SpecAugment: widest frequency mask (mel bins) and time mask (frames)
    time_mask: int = option(20, role="train")
    keep_all_words: bool = option(False, "train on every word of the full Speech Commands vocabulary instead of "
                                         "mapping it to the 12-class keyword layout (10 commands, _silence_, "
                                         "_unknown_)")
    noise: torch.Tensor | None = field(default=None, repr=False, compare=False)   # training only, not saved

    @property
    def architecture(self) -> str:
        return f"conv-bi{self.cell}"

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


def check(config: SpeechConfig) -> SpeechConfig:
    """Refuse impossible settings, naming their flags."""
    if not 4_000 <= config.sample_rate <= 48_000:
        raise SettingsError(f"--sample-rate {config.sample_rate}: choose a rate from 4000 to 48000 Hz.")
    if not 0.1 <= config.clip_seconds <= 10:
        raise SettingsError(f"--clip-seconds {config.clip_seconds}: choose from 0.1 to 10 seconds.")
    if not 8 <= config.n_mels <= 128:
        raise SettingsError(f"--n-mels {config.n_mels}: choose from 8 to 128.")
    if config.cell not in CELLS:
        raise SettingsError(f"--cell {config.cell!r}: choose one of {CELLS}.")
    config.snr_db = tuple(config.snr_db)
    return config
