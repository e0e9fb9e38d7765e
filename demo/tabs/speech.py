"""The Speech tab: upload or record a word -> every label's confidence and a picture of what the model heard;
or, in Listen mode, the model's words as they are spoken into the microphone.

Components and wiring only: decoding and features come from `training.tasks.speech`, the functions
training used, with the settings stored in the chosen checkpoint; Listen's sliding window and debounce
are demo/listen.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from demo.batch import FileBatch, batch_panel
from demo.listen import Listener, Settings, headline, history_markdown, keyword_model
from demo.predictor import ModelSet, ModelUnavailable
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
                "pick an example. Or choose **Listen** to hear the model's words live as you speak them.")
    with gr.Row(equal_height=False):
        with gr.Column():
            mode = gr.Radio(MODES, value=MODES[0], label="Mode", elem_id="speech-mode")
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
            mic = gr.Audio(sources=["microphone"], type="numpy", streaming=True, label="Microphone (live)",
                           visible=False, elem_id="speech-mic")
            picker = model_picker(models)
            button = gr.Button("Recognise", variant="primary")
        with gr.Column():
            with gr.Column(visible=False) as listen_panel:
                spoken = gr.Markdown(headline(None), elem_id="speech-heard")
                history = gr.Markdown(history_markdown(None), elem_id="speech-heard-history")
            with gr.Column() as clip_panel:
                status = gr.Markdown(visible=False, elem_classes=["status"])
                label = gr.Label(num_top_classes=5, label="Prediction", elem_id="speech-label")
                plot = gr.Plot(label="What the model heard", show_label=False)   # the figure has its own title
            knows_panel(models, picker)
            with gr.Accordion("API result (JSON, as /recognize_speech_json returns it)", open=False) as json_panel:
                result = gr.JSON(label="Result")
    with gr.Column() as clip_extras:
        for prefix, model, title in EXAMPLE_SETS:
            example_set(models, audio, picker, prefix, model, title)
        batch_panel(models, picker, FileBatch("clip", AUDIO_TYPES), api_name="recognize_speech_batch",
                    to_raw=heard_clip, notes=lambda predictor, heard: heard.notes)
    model_panels(models, picker, "speech_model_info", describe=speech_info)
    listen_flow(models, mode, mic, picker, spoken, history)
    mode_switch(mode, [audio, button, clip_panel, json_panel, clip_extras], [mic, listen_panel])

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


MODES = ("Recognise a clip", "Listen")
LISTEN = MODES[1]
LISTEN_SECONDS = 120   # one recording streams at most this long; Record again to go on listening
LISTENERS = 8          # recordings streamed at once; each costs a few milliseconds per quarter second of audio


def mode_switch(mode: gr.Radio, clip_parts: list, listen_parts: list) -> None:
    """Choosing a mode shows its inputs and outputs and hides the other's (hiding the live microphone ends
    its recording)."""
    def show(chosen: str) -> list:
        listening = chosen == LISTEN
        return [gr.update(visible=not listening) for _ in clip_parts] + [gr.update(visible=listening)
                                                                          for _ in listen_parts]
    mode.change(show, mode, clip_parts + listen_parts, queue=False, api_visibility="private")


def listen_flow(models: ModelSet, mode: gr.Radio, mic: gr.Audio, picker: gr.Dropdown, spoken: gr.Markdown,
                history: gr.Markdown) -> None:
    """Stream the live microphone through the chosen model (demo/listen.py) into the headline and the history;
    each visitor's Listener lives in a gr.State."""
    listener = gr.State(None)
    # Each stream holds a place of the event's concurrency for its whole recording, hence its own, larger
    # limit and a time limit. stream_every is a request: the listener's windows do not depend on chunk sizes.
    mic.stream(listen_step(models), [mic, listener, picker], [spoken, history, listener],
               stream_every=Settings().hop_seconds, time_limit=LISTEN_SECONDS, concurrency_limit=LISTENERS,
               concurrency_id="speech-listen", show_progress="hidden", show_progress_on=[listener],
               api_visibility="private")
    # A recording that stops (or a mode change, which ends it) leaves the history on screen; the next one
    # starts a new Listener.
    gr.on([mic.stop_recording, mode.change], lambda: (None, headline(None)), None, [listener, spoken], queue=False,
          show_progress="hidden", api_visibility="private")


def listen_step(models: ModelSet):
    """The stream's function: one microphone chunk -> (the headline, the words heard so far, the listener)."""
    def step(chunk, listener: Listener | None, model_name: str | None = None):
        listener = listener if isinstance(listener, Listener) else Listener()
        try:
            listener.step(chunk, keyword_model(models.get(model_name)))
        except ModelUnavailable as e:
            listener.problem = str(e)
        except Exception:   # a fault, but raising would end the visitor's stream for good: log it, keep listening
            logging.getLogger(__name__).exception("listening to a microphone chunk failed")
            listener.problem = "A moment of audio could not be heard (the server's log says why); still listening."
        return headline(listener), history_markdown(listener), listener
    return step


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
