"""The Text tab: a sentence -> top labels, and the words that pushed the prediction. Components and wiring only."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from demo.predictor import ModelSet
from demo.tabs.common import flag_unsure, info_markdown, model_info_endpoint, model_picker, report_panel, user_errors
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


def notes(config, ids: list[int], truncated: bool) -> str:
    """What the user should know about how the model read the text (cut short, unknown words)."""
    out = [EXPLANATION_HELP]
    if truncated:
        out.append(f"> Note: {truncation_note(config)}")
    if all(i == text_task.UNK_ID for i in ids):
        out.append("> Note: none of these words or symbols are in the model's vocabulary, so the prediction "
                   "is little more than a guess.")
    return "\n\n".join(out)


def build(models: ModelSet) -> None:
    gr.Markdown("Classify a sentence: type it and press Enter, or pick an example.")
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", lines=1, max_lines=8, placeholder="Type a sentence, e.g. i feel wonderful today")
            picker = model_picker(models)
            button = gr.Button("Classify", variant="primary")
            gr.Examples(examples=[[row["text"]] for row in load_examples()], inputs=[text], label="Examples (emotion validation sentences, two per label)")
        with gr.Column():
            label = gr.Label(num_top_classes=5, label="Prediction")
            explanation = gr.HighlightedText(label="Why: word importance (occlusion)", show_legend=False,
                                             show_inline_category=False, combine_adjacent=False)
            note = gr.Markdown(EXPLANATION_HELP)
            info = gr.Markdown(info_markdown(models, picker.value))
            report_panel(models, picker)

    @user_errors
    def classify_text(text: str, model_name: str | None = None):
        """Top labels with probabilities for one text; text past the model's limit is cut, with a warning."""
        predictor = models.get(model_name)
        _, truncated = text_task.tokenize(predictor.task_config, text)
        result = predictor.predict(text)
        if truncated:
            gr.Warning(truncation_note(predictor.task_config))
        return result

    @user_errors
    def explain_text(text: str, model_name: str | None = None):
        """The words that pushed the prediction (occlusion scores in [-1, 1]) and notes on how the text was read."""
        predictor = models.get(model_name)
        ids, truncated = text_task.tokenize(predictor.task_config, text)
        pieces = predictor.explain(text)
        if truncated:
            pieces.append((" …", None))   # the rest of the text was not read, so it gets no colour
        return pieces, notes(predictor.task_config, ids, truncated)

    # One endpoint for the button and Enter. The explanation is a second step, run only after a successful
    # prediction, so /classify_text answers with the labels alone and as fast as it can.
    classified = gr.on([button.click, text.submit], classify_text, [text, picker], label, api_name="classify_text")
    classified.success(explain_text, [text, picker], [explanation, note], api_name="explain_text")
    flag_unsure(classified, models, label, picker)
    model_info_endpoint(models, picker, info, "text_model_info")
