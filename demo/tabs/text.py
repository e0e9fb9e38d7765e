"""The Text tab: a sentence -> every label's confidence, and the words that pushed the prediction.
Components and wiring only."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from demo.batch import TextBatch, batch_panel
from demo.predictor import ModelSet
from demo.tabs.common import (knows_panel, label_endpoint, label_value, model_panels, model_picker, prediction_flow,
                              result_record, show_result, user_errors)
from training.tasks import text as text_task

EXAMPLES_FILE = Path(__file__).resolve().parents[1] / "examples" / "text" / "emotion_validation.jsonl"


def load_examples(path: Path = EXAMPLES_FILE) -> list[dict]:
    """Real validation sentences with their dataset labels (see demo/examples/text/README.md)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


EXPLANATION_HELP = (
    "**Why** (occlusion): each word is removed in turn and the drop in the predicted label's probability is "
    "measured. Red words pushed the text towards the prediction, purple words away from it; the strongest "
    "word is the most saturated.")


def truncation_note(config) -> str:
    return (f"The text is longer than this model reads ({config.max_tokens} tokens): only the beginning was "
            "classified.")


# WordPiece spells any word from pieces of its vocabulary; a word becomes the one token [UNK] only when it
# holds a character the vocabulary has none for (most emoji, scripts it was not built from).
UNREADABLE_NOTE = ("The model could not read any of this text: every word holds a character its vocabulary has no "
                   "piece for (an emoji, another script), so the prediction is little more than a guess.")


def unknown_note(words: list[str]) -> str:
    shown = ", ".join(f"`{w}`" for w in words[:5]) + (f" and {len(words) - 5} more" if len(words) > 5 else "")
    return (f"Read as unknown ([UNK]), for a character its vocabulary has no piece for: {shown}. The model saw "
            "that a word was there, not which.")


def reading_notes(config, text: str) -> list[str]:
    """What the user should know about how the model read the text (cut short, words it could not spell)."""
    _, truncated = text_task.tokenize(config, text)
    unknown, words = text_task.unknown_words(config, text)
    out = [truncation_note(config)] if truncated else []
    if unknown:
        out.append(UNREADABLE_NOTE if len(unknown) == words else unknown_note(unknown))
    return out


def notes(config, text: str) -> str:
    """The explanation's help text, then the reading notes."""
    return "\n\n".join([EXPLANATION_HELP, *(f"> Note: {n}" for n in reading_notes(config, text))])


def build(models: ModelSet) -> gr.Dropdown:
    gr.Markdown("Classify a sentence: type it and press Enter, or pick an example.")
    with gr.Row(equal_height=False):
        with gr.Column():
            text = gr.Textbox(label="Text", lines=1, max_lines=8, placeholder="Type a sentence, e.g. i feel wonderful today")
            picker = model_picker(models)
            button = gr.Button("Classify", variant="primary")
        with gr.Column():
            status = gr.Markdown(visible=False, elem_classes=["status"])
            label = gr.Label(num_top_classes=6, label="Prediction", elem_id="text-label")
            explanation = gr.HighlightedText(label="Why: word importance (occlusion)", show_legend=False,
                                             show_inline_category=False, combine_adjacent=False)
            note = gr.Markdown(EXPLANATION_HELP)
            knows_panel(models, picker)
            with gr.Accordion("API result (JSON, as /classify_text_json returns it)", open=False):
                result = gr.JSON(label="Result")
    rows = load_examples()
    examples = gr.Examples(examples=[[row["text"]] for row in rows], inputs=[text], examples_per_page=len(rows) or 10,
                           example_labels=[f"{row['text']}  ({row['label']})" for row in rows] if rows else None,
                           label="Examples: emotion validation sentences, two per label (the dataset's label in brackets)")
    batch_panel(models, picker, TextBatch(text_task.TASK.input_columns), api_name="classify_text_batch",
                notes=lambda p, text: reading_notes(p.task_config, text))
    model_panels(models, picker, "text_model_info")

    @user_errors
    def classify_text_json(text: str, model_name: str | None = None) -> dict:
        """Every label's confidence for one text, the unsure flag, and notes (cut short, unreadable words)."""
        predictor = models.get(model_name)
        return result_record(predictor, predictor.predict(text), reading_notes(predictor.task_config, text))

    def classify_text(text: str, model_name: str | None = None):
        """Top labels with probabilities for one text; text past the model's limit is cut."""
        return label_value(classify_text_json(text, model_name))

    @user_errors
    def explain_text(text: str, model_name: str | None = None):
        """The words that pushed the prediction (occlusion scores in [-1, 1]) and notes on how the text was read."""
        predictor = models.get(model_name)
        pieces = predictor.explain(text)
        if text_task.tokenize(predictor.task_config, text)[1]:
            pieces.append((" …", None))   # the rest of the text was not read, so it gets no colour
        return pieces, notes(predictor.task_config, text)

    prediction_flow(models, inputs=[text, picker], result=result, label=label, status=status,
                    analyse=classify_text_json, explain=explain_text, explain_outputs=[explanation, note],
                    api_name="classify_text_json", explain_api_name="explain_text",
                    run_on=[button.click, text.submit], rerun_on=[picker.change, examples.load_input_event])
    label_endpoint(classify_text, [text, picker], [label], "classify_text")
    # Editing the text makes the shown result stale: clear it until the new text is classified.
    text.input(lambda: (None, *show_result(models, None), None, EXPLANATION_HELP), None,
               [result, label, status, explanation, note], queue=False, show_progress="hidden",
               api_visibility="private", trigger_mode="always_last")
    return picker
