"""The Speech tab: upload or record a word -> every label's confidence and a picture of what the model heard.

Components and wiring only: decoding and features come from `training.tasks.speech`, the functions
training used, with the settings stored in the chosen checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from demo.batch import FileBatch, batch_panel
from demo.predictor import ModelSet
from demo.tabs.common import (example_caption, example_files, info_markdown, knows_panel, label_endpoint, label_value,
                              model_panels, model_picker, prediction_flow, result_record, user_errors)
from training.tasks import InputError
from training.tasks.speech import Heard, listen

AUDIO_TYPES = (".wav", ".flac", ".ogg", ".mp3")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "speech"
# Example clips by file-name prefix, with the shipped model that knows their words.
EXAMPLE_SETS = (("command", "speech_commands", "Examples: commands (Speech Commands speakers held out from training)"),
                ("digit", "fsdd", "Examples: digits (the FSDD speaker held out from training)"))


def build(models: ModelSet) -> gr.Dropdown:
    gr.Markdown("Recognise a spoken word: record one with the microphone, upload a clip (WAV, FLAC, OGG, MP3), or "
                "pick an example.")
    with gr.Row(equal_height=False):
        with gr.Column():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
            picker = model_picker(models)
            button = gr.Button("Recognise", variant="primary")
        with gr.Column():
            status = gr.Markdown(visible=False, elem_classes=["status"])
            label = gr.Label(num_top_classes=5, label="Prediction", elem_id="speech-label")
            plot = gr.Plot(label="What the model heard", show_label=False)   # the figure has its own title
            knows_panel(models, picker)
            with gr.Accordion("API result (JSON, as /recognize_speech_json returns it)", open=False):
                result = gr.JSON(label="Result")
    for prefix, model, title in EXAMPLE_SETS:
        example_set(models, audio, picker, prefix, model, title)
    batch_panel(models, picker, FileBatch("clip", AUDIO_TYPES), api_name="recognize_speech_batch", to_raw=heard_clip,
                notes=lambda predictor, heard: heard.notes)
    model_panels(models, picker, "speech_model_info", describe=speech_info)

    @user_errors
    def recognize_speech_json(audio_file, model_name=None) -> dict:
        """Every label's confidence for one clip, the unsure flag, and notes on what the model heard of it."""
        predictor = models.get(model_name)
        heard = heard_clip(predictor, audio_file)
        return result_record(predictor, predictor.predict(heard), heard.notes)

    def recognize_speech(audio_file, model_name=None):
        """Top labels with probabilities for one clip, and notes on what the model heard of it."""
        found = recognize_speech_json(audio_file, model_name)
        return label_value(found), "\n".join(f"> {note}" for note in found["notes"])

    @user_errors
    def draw_heard(audio_file, model_name=None):
        """The waveform and log-mel spectrogram the model was given."""
        predictor = models.get(model_name)
        return predictor.explain(heard_clip(predictor, audio_file))

    prediction_flow(models, inputs=[audio, picker], result=result, label=label, status=status,
                    analyse=recognize_speech_json, explain=draw_heard, explain_outputs=[plot],
                    api_name="recognize_speech_json", explain_api_name="explain_speech",
                    run_on=[button.click], rerun_on=[audio.change, picker.change])
    label_endpoint(recognize_speech, [audio, picker], [label, status], "recognize_speech")
    return picker


def example_set(models: ModelSet, audio, picker, prefix: str, model: str, title: str):
    """One model's example clips, all on one page, each named by its word; choosing one loads the clip
    (playable in the input) and picks the model it is for, which runs it."""
    clips = example_files(EXAMPLES, f"{prefix}-*.wav")
    if not clips or model not in models.names:
        return None
    counts: dict[str, int] = {}
    names = []
    for clip in clips:
        word = example_caption(clip)
        counts[word] = counts.get(word, 0) + 1
        names.append(f"{word} ({counts[word]})")
    return gr.Examples(examples=[[c, model] for c in clips], inputs=[audio, picker], label=title,
                       examples_per_page=len(clips), example_labels=names)


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
