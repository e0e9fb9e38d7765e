"""The Image tab: upload, webcam or clipboard -> top-5 labels. Components and wiring only."""

from __future__ import annotations

import base64
from pathlib import Path

import gradio as gr

from demo.predictor import ModelSet
from demo.tabs.common import info_markdown, model_picker, predictor_or_error
from training.tasks.image import ImageInputError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "image"


class ImageFile(gr.Image):
    """A gr.Image whose value reaches the function undecoded: the uploaded file's path (or bytes).

    gr.Image normally decodes the upload with PIL before the function runs, so a broken or huge file
    fails inside Gradio with a generic error. Here `training.tasks.image.load_image` decodes it, after
    checking size and pixel count, and a bad file gets a message that says what is wrong.
    """

    def get_block_name(self) -> str:
        return "image"     # the browser side is the ordinary image component

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):      # webcam/clipboard as a data URL
            try:
                return base64.b64decode(payload.url.split(",", 1)[1], validate=False)
            except (ValueError, IndexError):
                raise gr.Error("The image data could not be read.") from None
        if payload.path is None:
            raise gr.Error("No image was received.")
        return payload.path


def build(models: ModelSet) -> None:
    gr.Markdown("Classify a photo. Upload a file, use the webcam, or paste from the clipboard.")
    with gr.Row():
        with gr.Column():
            image = ImageFile(sources=["upload", "webcam", "clipboard"], type="filepath", label="Image",
                              height=320)
            picker = model_picker(models)
            button = gr.Button("Classify", variant="primary")
            examples = sorted(str(p) for p in EXAMPLES.glob("*.png")) if EXAMPLES.is_dir() else []
            if examples:
                gr.Examples(examples=examples, inputs=[image], label="Examples (CIFAR-10 validation images)")
        with gr.Column():
            label = gr.Label(num_top_classes=5, label="Prediction")
            info = gr.Markdown(info_markdown(models, picker.value))

    def classify_image(image_file, model_name=None):
        """Top labels with probabilities for one image."""
        predictor = predictor_or_error(models, model_name)
        if image_file is None:
            raise gr.Error("Upload an image, take a webcam photo or paste one first.", print_exception=False)
        try:
            return predictor.predict(image_file)
        except ImageInputError as e:   # the user's file, not a server fault: no traceback in the log
            raise gr.Error(str(e), print_exception=False) from None

    button.click(classify_image, [image, picker], label, api_name="classify_image")
    image.upload(classify_image, [image, picker], label, api_visibility="private")

    def image_model_info(model_name=None):
        """The model panel's text: dataset, validation scores, labels, device, and unavailable checkpoints."""
        return info_markdown(models, model_name)

    picker.change(image_model_info, picker, info, api_name="image_model_info")
