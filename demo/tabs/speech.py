"""The Speech tab: upload or record a word -> top-5 labels and a picture of what the model heard.

Components and wiring only: decoding and features come from `training.tasks.speech`, the functions
training used, with the settings stored in the chosen checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from demo.predictor import ModelSet
from demo.tabs.common import (example_files, flag_unsure, info_markdown, model_info_endpoint, model_picker,
                              report_panel, user_errors)
from training.tasks import InputError
from training.tasks.speech import Heard, listen

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

    @user_errors
    def recognize_speech(audio_file, model_name=None):
        """Top labels with probabilities for one clip, and notes on what the model heard of it."""
        predictor = models.get(model_name)
        heard = heard_clip(predictor, audio_file)
        return predictor.predict(heard), notes_markdown(heard)

    @user_errors
    def draw_heard(audio_file, model_name=None):
        # A second, UI-only step: the API answers without waiting for matplotlib, and decoding the
        # clip again costs milliseconds.
        predictor = models.get(model_name)
        return predictor.explain(heard_clip(predictor, audio_file))

    inputs = [audio, picker]
    recognized = [button.click(recognize_speech, inputs, [label, notes], api_name="recognize_speech")]
    for trigger in (audio.stop_recording, audio.upload):
        recognized.append(trigger(recognize_speech, inputs, [label, notes], api_visibility="private"))
    for event in recognized:
        event.success(draw_heard, inputs, plot, api_visibility="private")
        flag_unsure(event, models, label, picker)
    model_info_endpoint(models, picker, info, "speech_model_info", describe=speech_info)


def heard_clip(predictor, audio_file) -> Heard:
    if audio_file is None:
        raise InputError("Record or upload a clip first.")
    return listen(predictor.task_config, audio_file)


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
