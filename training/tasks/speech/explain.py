"""A picture of what the speech model heard: the waveform and the log-mel spectrogram it was given."""

from __future__ import annotations

import numpy as np

from training.tasks.speech.preprocess import Heard


def heard_figure(heard: Heard):
    """The waveform and the log-mel spectrogram the model was given, on the input's time axis."""
    from matplotlib.figure import Figure   # not pyplot: figures are built in worker threads

    wave = np.asarray(heard.waveform, dtype=np.float32)
    mel = np.asarray(heard.features[0], dtype=np.float32)
    t0, t1 = heard.start, heard.start + len(wave) / heard.sample_rate
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 2))
    top.plot(np.linspace(t0, t1, len(wave), endpoint=False), wave, linewidth=0.6)
    top.set_ylim(-1.05, 1.05)
    top.set_ylabel("amplitude")
    top.set_title(f"What the model heard: {t1 - t0:g} s at {heard.sample_rate / 1000:g} kHz"
                  + (f" (from {t0:.2f} s of a {heard.duration:.1f} s clip)" if heard.duration > t1 - t0 + 0.05 else ""))
    image = bottom.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(t0, t1, 0, mel.shape[0]))
    bottom.set_ylabel("mel bin")
    bottom.set_xlabel("time (s)")
    fig.colorbar(image, ax=bottom, label="normalised log-mel", pad=0.01)
    return fig
