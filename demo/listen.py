"""Live keyword spotting: a microphone stream -> the words a speech model hears in it, each announced once.

The microphone arrives in chunks of any length (the browser sends one about every 0.1 s, a longer one when
the server falls behind). `Listener` keeps the last seconds of it at the microphone's own rate and hears a
window of the model's clip length every `hop_seconds` of audio, on a fixed grid of stream time, so what it
hears does not depend on how the audio was cut into chunks. Each window goes through the demo's decoder
(`training.tasks.speech.listen`: resampled to the chosen model's rate, log-mel), so a window is heard exactly
as an uploaded clip of that length would be, whichever model listens and at whatever rate.

A quiet window (RMS below `quiet_dbfs`) is not classified: the features are normalised per clip, so the model
would hear room noise as loud as a word. A window votes for its top label when that is not a background label
(the task's `_silence_` and `_unknown_`), its confidence reaches the model's unsure threshold, and its sound
is not at one edge of it (a word cut off by the window is not one the model learnt). A keyword is
announced when it wins `confirm` consecutive windows, and not again until `confirm` windows in a row have
not voted for it: a word is heard by several overlapping windows, and is announced once.

No Gradio here: the Speech tab (demo/tabs/speech.py) wires it to the microphone.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from training.tasks import InputError

Classify = Callable[[int, np.ndarray], dict]   # (sample rate, mono float32 window) -> {label: probability}


@dataclass(frozen=True)
class Settings:
    hop_seconds: float = 0.25   # a window every quarter second: a word (0.3-0.8 s) fills two or more of them
    confirm: int = 2            # consecutive winning windows before a keyword is announced
    quiet_dbfs: float = -50.0   # windows quieter than this are not classified
    # A window votes only if its sound is centred (energy centre in the middle 60%): the models learnt words
    # centred in their clips, and a window holding only a word's start or end is where false alarms came from
    # (fsdd, 20 held-out digits at 5 offsets: 7 wrong runs of 100 without this, 2 with it; speech_commands
    # 105 of 120 right either way, its misses clips it also gets wrong as uploads).
    centre_margin: float = 0.2
    history: int = 8            # detections listed, newest first
    hold_seconds: float = 1.5   # the headline shows a detection for this long
    max_windows: int = 4        # windows heard per chunk at most: an older backlog (the server fell behind) is skipped


@dataclass(frozen=True)
class KeywordModel:
    """What the listener needs of a model."""
    name: str
    classify: Classify
    clip_seconds: float
    background: frozenset = frozenset()   # labels that mean "no keyword"
    unsure_threshold: float = 0.0


def keyword_model(predictor) -> KeywordModel:
    """A demo `Predictor` as a keyword model: its windows decoded by `listen`, as the Speech tab decodes a clip;
    the speech task's `_silence_` and `_unknown_` (where the model has them) are its background labels."""
    from training.tasks.speech import SILENCE, UNKNOWN, listen

    config = predictor.task_config

    def classify(rate: int, samples: np.ndarray) -> dict:
        return predictor.predict(listen(config, (rate, samples)))

    return KeywordModel(predictor.name, classify, float(config.clip_seconds),
                        frozenset({SILENCE, UNKNOWN} & set(predictor.labels)), predictor.unsure_threshold)


class Window(NamedTuple):
    """One heard window."""
    end: float               # seconds into the stream
    label: str | None        # the top label; None for a quiet window, which was not classified
    confidence: float
    dbfs: float              # its RMS level
    vote: str | None         # the keyword it counts for, if any


class Detection(NamedTuple):
    label: str
    confidence: float
    time: float              # seconds into the stream where the window that confirmed it ends


@dataclass
class Debounce:
    """Consecutive windows' votes -> announcements: a keyword is announced after `confirm` consecutive votes,
    and not again until `confirm` windows in a row have not voted for it (its utterance is over)."""
    confirm: int = 2
    candidate: str | None = None
    streak: int = 0
    announced: str | None = None
    away: int = 0            # consecutive windows without a vote for `announced`

    def update(self, vote: str | None) -> bool:
        """Count one window's vote (None: no keyword); True when `vote` is to be announced now."""
        self.streak = self.streak + 1 if vote is not None and vote == self.candidate else int(vote is not None)
        self.candidate = vote
        if self.announced is not None:
            self.away = 0 if vote == self.announced else self.away + 1
            if self.away >= self.confirm:
                self.announced = None
        if vote is None or vote == self.announced or self.streak < self.confirm:
            return False
        self.announced, self.away = vote, 0
        return True


@dataclass
class Listener:
    """One visitor's stream: the rolling buffer, the window grid, the debounce and what was heard."""
    settings: Settings = field(default_factory=Settings)
    rate: int = 0                        # the microphone's sample rate
    buffer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))   # its latest mono samples
    heard: float = 0.0                   # seconds of audio received
    hops: int = 0                        # grid points (every hop_seconds) passed
    model: str | None = None             # the model whose votes the debounce counts
    debounce: Debounce = field(init=False)
    last: Window | None = None           # the latest window heard
    history: deque = field(init=False)   # Detections, newest first
    problem: str | None = None           # why the latest chunk or window could not be heard

    def __post_init__(self):
        self.debounce = Debounce(self.settings.confirm)
        self.history = deque(maxlen=self.settings.history)

    def step(self, chunk, model: KeywordModel) -> list[Detection]:
        """Append one microphone chunk ((rate, samples) as Gradio gives it; None or empty: nothing), hear the
        windows it completes, and return the keywords announced. Unusable audio never raises: `problem` says
        what was wrong, and the stream goes on."""
        self.problem = None
        if model.name != self.model:   # another model, another vocabulary: count votes afresh
            self.model, self.debounce = model.name, Debounce(self.settings.confirm)
        try:
            self.append(chunk)
        except InputError as e:
            self.problem = str(e)
            return []
        found = []
        for end in self.due(model.clip_seconds):
            window = self.hear(end, model)
            if window is None:
                continue
            self.last = window
            if self.debounce.update(window.vote):
                found.append(Detection(window.vote, window.confidence, window.end))
                self.history.appendleft(found[-1])
        self.trim(model.clip_seconds)
        return found

    def append(self, chunk) -> None:
        from training.tasks.speech.audio import MAX_READ_SECONDS, array_samples, to_mono

        if chunk is None:
            return
        if not isinstance(chunk, (tuple, list)) or len(chunk) != 2:
            raise InputError("A microphone chunk must be (sample rate, samples).")
        if np.size(chunk[1]) == 0:
            return
        data, rate, _ = array_samples(*chunk, max_seconds=MAX_READ_SECONDS)
        mono, _ = to_mono(data)   # repairs NaN and over-range samples; those notes are for whole clips
        if self.rate and rate != self.rate:   # the microphone changed its rate: keep the audio continuous
            self.buffer = resampled(self.buffer, self.rate, rate)
        self.rate = rate
        self.buffer = np.concatenate([self.buffer, mono])
        self.heard += len(mono) / rate

    def due(self, clip_seconds: float) -> list[float]:
        """Ends (stream seconds) of the windows the audio received so far completes: every hop on the grid,
        once a whole clip has been heard; at most `max_windows`, the latest."""
        hop, ends = self.settings.hop_seconds, []
        while (self.hops + 1) * hop <= self.heard + 1e-6:
            self.hops += 1
            if self.hops * hop >= clip_seconds - 1e-6:
                ends.append(self.hops * hop)
        return ends[-self.settings.max_windows:]

    def hear(self, end: float, model: KeywordModel) -> Window | None:
        """Classify the window of `model.clip_seconds` that ends at `end` (None if the buffer lacks it)."""
        size = int(round(model.clip_seconds * self.rate))
        stop = len(self.buffer) - int(round((self.heard - end) * self.rate))
        if size <= 0 or stop - size < 0 or stop > len(self.buffer):
            return None
        samples = self.buffer[stop - size:stop]
        dbfs = 10 * math.log10(float(np.mean(np.square(samples, dtype=np.float64))) + 1e-20)
        if dbfs < self.settings.quiet_dbfs:
            return Window(end, None, 0.0, dbfs, None)
        try:
            probs = model.classify(self.rate, samples)
        except InputError as e:
            self.problem = str(e)
            return Window(end, None, 0.0, dbfs, None)
        label, confidence = max(probs.items(), key=lambda kv: kv[1])
        margin = self.settings.centre_margin
        votes = (label not in model.background and confidence >= model.unsure_threshold
                 and margin <= energy_centre(samples) <= 1 - margin)
        return Window(end, label, float(confidence), dbfs, label if votes else None)

    def trim(self, clip_seconds: float) -> None:
        """Keep what the next chunk's windows can need: a clip, plus the hops a backlog may hear."""
        keep = int(math.ceil((clip_seconds + self.settings.hop_seconds * self.settings.max_windows) * self.rate))
        if len(self.buffer) > keep:
            self.buffer = self.buffer[-keep:].copy()

    def showing(self) -> Detection | None:
        """The detection the headline shows: the latest, for `hold_seconds` after it."""
        latest = self.history[0] if self.history else None
        return latest if latest and self.heard - latest.time <= self.settings.hold_seconds else None


def energy_centre(x: np.ndarray) -> float:
    """Where a window's energy lies, from 0 (its start) to 1 (its end)."""
    energy = np.square(x, dtype=np.float64)
    # An elementwise sum, not np.dot: BLAS threads spinning beside torch's made this take milliseconds.
    return float((energy * np.arange(len(x))).sum() / max(float(energy.sum()), 1e-30) / max(len(x) - 1, 1))


def resampled(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    import torch

    from training.tasks.speech.audio import resample

    return resample(torch.from_numpy(np.ascontiguousarray(x)), rate, target).numpy() if len(x) else x


# ------------------------------------------------------------------------------------------ what it shows

MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")
IDLE = "## Not listening\nPress **Record** and say one of the model's words; each one it hears shows here."


def escaped(label: str) -> str:
    """A label as Markdown text (`_silence_` would otherwise be shown in italics as 'silence')."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", label)


def headline(listener: Listener | None) -> str:
    """The big line: the keyword just heard, or that none was; and under it, what the latest window heard."""
    if listener is None:
        return IDLE
    shown = listener.showing()
    if listener.rate == 0:   # no audio yet
        text = IDLE
    elif shown:
        text = f"## Heard: **{escaped(shown.label)}** ({shown.confidence:.0%})\n{now_line(listener)}"
    else:
        text = f"## Nothing heard\n{now_line(listener)}"
    if listener.problem:
        text += f"\n\n> {listener.problem}"
    return text


def now_line(listener: Listener) -> str:
    window = listener.last
    if window is None:
        return "Listening: the first window is heard once a whole clip has arrived."
    if window.label is None:
        return "Now: silence" if window.dbfs < -90 else f"Now: quiet ({window.dbfs:.0f} dBFS)"
    counted = "" if window.vote else ", not counted"   # a background label, unsure, or a word at the window's edge
    return f"Now: {escaped(window.label)} ({window.confidence:.0%}{counted})"


def history_markdown(listener: Listener | None) -> str:
    """The detections so far, newest first, each with its time into the stream."""
    if listener is None or not listener.history:
        return "Words heard appear here, newest first, with their time into the recording."
    return "**Heard so far**\n" + "\n".join(
        f"- {d.time:.2f} s: **{escaped(d.label)}** ({d.confidence:.0%})" for d in listener.history)
