"""Pieces every tab shares: the model picker and its panels, the structured result and how it is shown,
the prediction flow that keeps every output in step with the inputs, examples, error reporting, and which
visitor may use which model.

The flow of a tab (`prediction_flow`): any new input, example or model choice first clears every output
panel, then runs the tab's JSON endpoint (the same result API callers get: every label's confidence, the
unsure flag, notes), shows that result, then draws the explanation. An error therefore never leaves an
earlier input's result on screen.

Errors (`user_errors`): a visitor sees a message, never a traceback or a server path; the server's log keeps
the detail of anything that is not the visitor's to fix. Models (`VisitorModels`): a model a visitor taught
on a Space (listed in `ModelSet.private`) lives in their session's folder, and is found only from that
session: for every other visitor, through every panel and endpoint, it does not exist.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import re
from pathlib import Path

import gradio as gr

from demo import memory
from demo.predictor import ModelSet, ModelUnavailable, Predictor
from training.tasks import InputError

# The label panel dims its bars when the model is unsure (see UNSURE_CLASS in app CSS, blocks.CSS).
UNSURE_CLASS = "unsure-label"
FAULT_MESSAGE = ("Something went wrong on the server while handling this (its log has the details). Please try "
                 "again; if it happens again, try another input.")
log = logging.getLogger(__name__)


def info_markdown(models: ModelSet, name: str | None) -> str:
    """The model panel: the chosen model's facts, plus any checkpoint that failed to load."""
    parts = []
    try:
        parts.append(models.get(name).info_markdown())
    except LookupError as e:
        parts.append(str(e))
    for bad, why in sorted(models.errors.items()):
        parts.append(f"\n> Unavailable: **{bad}**: {why}")
    return "\n".join(parts)


def knows_markdown(models: ModelSet, name: str | None) -> str:
    """What the chosen model knows (its labels) and cannot do, from its checkpoint."""
    try:
        return models.get(name).knows_markdown()
    except LookupError:
        return ""


def card_markdown(models: ModelSet, name: str | None) -> str:
    try:
        return models.get(name).card_markdown() or "This checkpoint has no model card (README.md)."
    except LookupError as e:
        return str(e)


def example_files(folder: Path, pattern: str) -> list[str]:
    """Example files named <label>-<n>.<ext>, ordered n first, so each page of examples starts with one of
    every label (airplane-1, automobile-1, ..., truck-1, airplane-2, ...)."""
    def key(path: Path):
        label, _, n = path.stem.rpartition("-")
        return (int(n) if n.isdigit() else 0, label)
    return [str(p) for p in sorted(folder.glob(pattern), key=key)] if folder.is_dir() else []


def example_caption(path: str) -> str:
    """'cat-2.png' -> 'cat'; 'command-yes-1.wav' -> 'yes'."""
    stem = Path(path).stem.rpartition("-")[0] or Path(path).stem
    return stem.split("-", 1)[-1] if stem.startswith(("command-", "digit-")) else stem


def model_picker(models: ModelSet) -> gr.Dropdown:
    names = models.names
    # allow_custom_value: the server does not check a name against the choices the page started with, so
    # a model taught since (Teach tab) is served by name, and a wrong name gets ModelSet.get's message,
    # which lists the models there are.
    return gr.Dropdown(choices=names, value=names[0] if names else None, label="Model", allow_custom_value=True,
                       info=f"checkpoints/{models.task}/ (new ones appear when the page is reloaded)",
                       interactive=bool(names))


def user_errors(fn):
    """Wrap an event function (or generator) so that no raw error reaches the visitor. Bad input (any task's
    `InputError`) and an unknown or broken model (`ModelUnavailable`) become a `gr.Error` with their
    message, server paths taken out, and no traceback in the log: they are the visitor's to fix. Any other
    exception is a fault: its traceback goes to the log (logging.exception) and the visitor gets
    FAULT_MESSAGE. A gr.Error raised on purpose passes as it is."""
    def handled(e: Exception) -> gr.Error:
        if isinstance(e, gr.Error):
            return e
        if isinstance(e, (InputError, ModelUnavailable)):
            return gr.Error(without_paths(str(e)), print_exception=False)
        log.exception("%s failed", getattr(fn, "__qualname__", fn))
        return gr.Error(FAULT_MESSAGE, print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:   # GeneratorExit (a cancel closing it) is no Exception: it passes
                raise handled(e) from None
            finally:
                memory.release()
        return generator

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise handled(e) from None
        finally:
            memory.release()
    return wrapper


# An absolute path's folders ("/tmp/gradio/3f2.../"), unless a word, a dot, a colon, a slash or a tilde comes
# before it (so "1/2", "a/b" and "https://..." stay): a message keeps a file's name, never where it lies.
FOLDERS = re.compile(r"(?<![\w.:/~])/(?:[^\s/'\"`()<>,;]+/)+")


def without_paths(message: str) -> str:
    return FOLDERS.sub("", message)


# ------------------------------------------------------------------------------------------- visitors

def session_id(request) -> str | None:
    """The name of a visitor's session folder: a digest of their Gradio session (one page load, or one
    gradio_client Client), so it names no one else's; None outside a request."""
    session = getattr(request, "session_hash", None)
    return hashlib.sha256(f"triptych-session:{session}".encode()).hexdigest()[:32] if session else None


def current_request():
    """The request of the event running in this thread. Gradio 6.31 sets it around every call of an event
    function, queued or not, each step of a generator included (gradio/utils.py, get_function_with_locals);
    tests/test_teach_space.py checks that a second client cannot reach the first one's model."""
    from gradio.context import LocalContext

    return LocalContext.request.get(None)


class VisitorModels(dict):
    """A `ModelSet.predictors` that keeps visitors' models to their makers: a name in the set's `private`
    is found (`in`, `[]`, `get`) only from a request of the session whose folder holds that model, so
    `ModelSet.get`, and with it every panel and endpoint of every tab, answers for it there alone.
    Iterating, `.items()` and `.values()` see every model: the listing and the clean-up need them."""

    def __init__(self, models: ModelSet):
        super().__init__(models.predictors)
        self.models = models

    def hidden(self, name) -> bool:
        if name not in self.models.private or not dict.__contains__(self, name):
            return False
        sid = session_id(current_request())
        return sid is None or sid not in dict.__getitem__(self, name).folder.parts

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, name) and not self.hidden(name)

    def __getitem__(self, name):
        if self.hidden(name):
            raise KeyError(name)
        return dict.__getitem__(self, name)

    def get(self, name, default=None):
        return self[name] if name in self else default


def keep_to_visitors(models: ModelSet) -> ModelSet:
    """`models`, its predictors kept to their visitors (`VisitorModels`)."""
    if not isinstance(models.predictors, VisitorModels):
        models.predictors = VisitorModels(models)
    return models


# ------------------------------------------------------------------------------------------ the result

def result_record(predictor: Predictor, probs: dict[str, float], notes=()) -> dict:
    """The structured result of one prediction, as the JSON endpoints return it and the UI shows it."""
    ranked = dict(sorted(((k, round(float(v), 6)) for k, v in probs.items()), key=lambda kv: -kv[1]))
    label, confidence = next(iter(ranked.items()))
    threshold = predictor.unsure_threshold
    return {"model": predictor.name, "label": label, "confidence": confidence, "confidences": ranked,
            "unsure": confidence < threshold, "unsure_threshold": threshold, "notes": list(notes)}


def unsure_message(models: ModelSet, result: dict) -> str:
    """The warning shown above an unsure prediction, in the words of the model's validation figures."""
    try:
        meaning = models.get(result["model"]).unsure_sentence()
    except LookupError:
        meaning = None
    text = (f"⚠️ **Unsure.** The top confidence, {result['confidence']:.0%}, is below "
            f"{result['unsure_threshold']:.0%}.")
    if meaning:
        text += f" {meaning[0].upper()}{meaning[1:]}."
    return text + " Treat the answer as a guess."


def status_markdown(models: ModelSet, result: dict | None) -> str:
    """The panel above the labels: the unsure warning and any notes on how the input was read."""
    if not result:
        return ""
    parts = [unsure_message(models, result)] if result.get("unsure") else []
    parts += [f"> {note}" for note in result.get("notes", [])]
    return "\n\n".join(parts)


def show_result(models: ModelSet, result: dict | None) -> tuple:
    """(label panel, status panel) updates for a result; both empty for None."""
    if not result:
        return (gr.update(value=None, label="Prediction", elem_classes=[]),
                gr.update(value="", visible=False))
    unsure = bool(result.get("unsure"))
    status = status_markdown(models, result)
    return (gr.update(value=result["confidences"], label="Unsure guess" if unsure else "Prediction",
                      elem_classes=[UNSURE_CLASS] if unsure else []),
            gr.update(value=status, visible=bool(status)))


def label_value(result: dict) -> dict[str, float]:
    """A result as the gr.Label endpoints return it: {label: confidence}."""
    return dict(result["confidences"])


# -------------------------------------------------------------------------------------------- panels

def model_panels(models: ModelSet, picker: gr.Dropdown, api_name: str, describe=info_markdown) -> gr.Markdown:
    """Under the results: the model's facts (through a named endpoint, e.g. /image_model_info), its model
    card and its report figures, each following the picker."""
    info = gr.Markdown(describe(models, picker.value))
    with gr.Accordion("Model card", open=False):
        card = gr.Markdown(card_markdown(models, picker.value))
    report_panel(models, picker)

    def model_info(model_name: str | None = None) -> str:
        return describe(models, model_name)

    model_info.__doc__ = describe.__doc__
    picker.change(user_errors(model_info), picker, info, api_name=api_name)
    picker.change(user_errors(lambda name: card_markdown(models, name)), picker, card, api_visibility="private",
                  queue=False)
    return info


def knows_panel(models: ModelSet, picker: gr.Dropdown) -> gr.Markdown:
    """What the chosen model knows and cannot do, following the picker."""
    knows = gr.Markdown(knows_markdown(models, picker.value), elem_classes=["knows"])
    picker.change(user_errors(lambda name: knows_markdown(models, name)), picker, knows, api_visibility="private",
                  queue=False)
    return knows


REPORT_FIGURES = (("confusion_matrix.png", "Validation confusion matrix"), ("training_curves.png", "Training curves"))


def report_figures(models: ModelSet, name: str | None) -> list:
    """The chosen model's report PNGs from its training run, decoded, one per REPORT_FIGURES entry (None
    where the run wrote none). Decoded images, not paths: Gradio serves copies from its cache, and the
    checkpoint folder itself is never exposed to the file route."""
    from PIL import Image

    try:
        folder = models.get(name).folder
    except LookupError:
        return [None] * len(REPORT_FIGURES)
    figures = []
    for file, _ in REPORT_FIGURES:
        try:
            with Image.open(folder / file) as im:
                figures.append(im.convert("RGB"))
        except OSError:
            figures.append(None)   # a run without reports, or an unreadable file: show what there is
    return figures


def report_panel(models: ModelSet, picker: gr.Dropdown) -> list[gr.Image]:
    """A closed accordion with the chosen model's confusion matrix and training curves, each at the
    column's full width so that it is readable where it is shown, following the picker."""
    with gr.Accordion("Validation confusion matrix and training curves", open=False):
        images = [gr.Image(value=figure, label=caption, type="pil", interactive=False, buttons=["download", "fullscreen"],
                           alt_text=f"{caption} of the chosen model's training run")
                  for figure, (_, caption) in zip(report_figures(models, picker.value), REPORT_FIGURES)]
    picker.change(user_errors(lambda name: report_figures(models, name)), picker, images, api_visibility="private")
    return images


# ---------------------------------------------------------------------------------------------- flow

def prediction_flow(models: ModelSet, *, inputs: list, result: gr.JSON, label: gr.Label, status: gr.Markdown,
                    analyse, explain, explain_outputs: list, api_name: str, explain_api_name: str,
                    run_on: list, rerun_on: list) -> None:
    """Wire a tab so that its outputs never disagree with its inputs.

    `analyse(input, model_name) -> result dict` is the tab's JSON endpoint (`/<api_name>`) and
    `explain(input, model_name)` fills `explain_outputs` (`/<explain_api_name>`). `run_on` are triggers
    that must have an input (the button, Enter): an empty input is an error. `rerun_on` are triggers that
    may find no input (a new upload or a cleared one, a model choice, an example): they clear the outputs,
    then run only if there is an input. A trigger is an event listener (`button.click`) or an event that
    came before (`examples.load_input_event`), which the flow then follows.
    """
    outputs = [result, label, status, *explain_outputs]

    def clear():
        return (None, *show_result(models, None), *[None] * len(explain_outputs))

    def when_given(fn, empty):
        def run(value, model_name=None):
            return fn(value, model_name) if not is_empty(value) else empty
        return run

    analyse, explain = user_errors(analyse), user_errors(explain)   # whatever the tab wrapped them in
    chains = [(run_on, analyse, explain, dict(api_name=api_name), dict(api_name=explain_api_name))]
    if rerun_on:
        none_out = None if len(explain_outputs) == 1 else (None,) * len(explain_outputs)
        private = dict(api_visibility="private")
        chains.append((rerun_on, when_given(analyse, None), when_given(explain, none_out), private, private))
    for triggers, analyse_fn, explain_fn, analyse_api, explain_api in chains:
        for cleared in _starts(triggers, clear, outputs):
            ran = cleared.then(analyse_fn, inputs, result, **analyse_api)
            shown = ran.success(lambda r: show_result(models, r), result, [label, status], queue=False,
                                api_visibility="private", show_progress="hidden")
            shown.then(None, js=SCROLL_TO_RESULT.replace("ID", label.elem_id or ""), api_visibility="private")
            shown.success(explain_fn, inputs, explain_outputs, **explain_api)


# On a narrow screen (a phone) the result sits under the input: bring it into view when it arrives.
SCROLL_TO_RESULT = """() => {
  const el = document.getElementById("ID");
  if (el && window.innerWidth < 768) {
    const box = el.getBoundingClientRect();
    if (box.top < 0 || box.top > window.innerHeight - 120) el.scrollIntoView({block: "start", behavior: "smooth"});
  }
}"""


def _starts(triggers: list, clear, outputs) -> list:
    """The first step of each chain: clear every output. Event listeners share one chain; an earlier
    event (which has `.then`) gets its own, after it."""
    listeners = [t for t in triggers if not hasattr(t, "then")]
    kwargs = dict(queue=False, show_progress="hidden", api_visibility="private")
    starts = [gr.on(listeners, clear, None, outputs, **kwargs)] if listeners else []
    return starts + [t.then(clear, None, outputs, **kwargs) for t in triggers if hasattr(t, "then")]


def is_empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def label_endpoint(fn, inputs: list, outputs: list, api_name: str) -> None:
    """A named endpoint that answers as the earlier releases did (the label panel's {label: confidence},
    and for some tabs notes), for their API callers; the UI runs the JSON endpoint. Its trigger is hidden:
    nothing in the page starts it."""
    trigger = gr.Button(visible=False, value=f"Run {api_name}")
    trigger.click(fn, inputs, outputs, api_name=api_name)
