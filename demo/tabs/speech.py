"""The Speech tab: upload or record a word -> top-5 labels and a picture of what the model heard.

Components and wiring only: decoding and features come from `training.tasks.speech`, the functions
training used, with the settings stored in the chosen checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from demo.predictor import ModelSet
from demo.tabs.common import example_files, flag_unsure, info_markdown, model_picker, predictor_or_error, report_panel
from training.tasks.speech import AudioInputError, Heard, listen

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "speech"
# Example clips by file-name prefix, with the shipped model that knows their words.
EXAMPLE_SETS = (("command", "speech_commands", "Examples: commands (Speech Commands speakers held out from training)"),
                ("digit", "fsdd", "Examples: digits (the FSDD speaker held out from training)"))


def build(models: ModelSet) -> None:
    gr.Markdown("Recognise a spoken word. Record one with the microphone or upload a clip (WAV, FLAC, OGG, "
                "MP3). The Speech Commands model knows *yes, no, up, down, left, right, on, off, stop, go*; "
                "the FSDD model knows the digits *zero* to *nine*.")
    with gr.Row():
        with gr.Column():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
            picker = model_picker(models)
            button = gr.Button("Recognise", variant="primary")
            for prefix, model, title in EXAMPLE_SETS:
                clips = example_files(EXAMPLES, f"{prefix}-*.wav")
                if clips and model in models.names:     # choosing an example also picks the model it is for
                    gr.Examples(examples=[[c, model] for c in clips], inputs=[audio, picker], label=title,
                                examples_per_page=12)
        with gr.Column():
            label = gr.Label(num_top_classes=5, label="Prediction")
            notes = gr.Markdown()
            plot = gr.Plot(label="What the model heard", show_label=False)   # the figure has its own title
            info = gr.Markdown(speech_info(models, picker.value))
            report_panel(models, picker)

    def recognize_speech(audio_file, model_name=None):
        """Top labels with probabilities for one clip, and notes on what the model heard of it."""
        predictor = predictor_or_error(models, model_name)
        heard = listen_or_error(predictor, audio_file)
        return predictor.predict(heard), notes_markdown(heard)

    def draw_heard(audio_file, model_name=None):
        # A second, UI-only step: the API answers without waiting for matplotlib, and decoding the
        # clip again costs milliseconds.
        return heard_figure(listen_or_error(predictor_or_error(models, model_name), audio_file))

    inputs = [audio, picker]
    recognized = [button.click(recognize_speech, inputs, [label, notes], api_name="recognize_speech")]
    for trigger in (audio.stop_recording, audio.upload):
        recognized.append(trigger(recognize_speech, inputs, [label, notes], api_visibility="private"))
    for event in recognized:
        event.success(draw_heard, inputs, plot, api_visibility="private")
        flag_unsure(event, models, label, picker)

    def speech_model_info(model_name=None):
        """The model panel's text: dataset, validation scores, labels, device, what the model listens to."""
        return speech_info(models, model_name)

    picker.change(speech_model_info, picker, info, api_name="speech_model_info")


def listen_or_error(predictor, audio_file) -> Heard:
    if audio_file is None:
        raise gr.Error("Record or upload a clip first.", print_exception=False)
    try:
        return listen(predictor.task_config, audio_file)
    except AudioInputError as e:   # the user's file, not a server fault: no traceback in the log
        raise gr.Error(str(e), print_exception=False) from None


def speech_info(models: ModelSet, name: str | None) -> str:
    """The shared model panel plus what this model listens to."""
    text = info_markdown(models, name)
    try:
        c = models.get(name).task_config
    except LookupError:
        return text
    return (f"{text}\n- Hears {c.clip_seconds:g} s at {c.sample_rate / 1000:g} kHz ({c.n_mels} mel bins); "
            "a longer clip is heard through its loudest window")


def notes_markdown(heard: Heard) -> str:
    return "\n".join(f"> {note}" for note in heard.notes)


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
