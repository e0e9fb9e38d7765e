"""The Image tab: upload, webcam or clipboard -> top-5 labels. Components and wiring only."""

from __future__ import annotations

import base64
from pathlib import Path

import gradio as gr

from demo.predictor import ModelSet
from demo.tabs.common import (example_files, flag_unsure, info_markdown, model_info_endpoint, model_picker,
                              report_panel, user_errors)
from training.tasks import InputError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "image"


class ImageFile(gr.Image):
    """A gr.Image whose value reaches the function undecoded: the uploaded file's path (or bytes).

    gr.Image normally decodes the upload with PIL before the function runs, so a broken or huge file
    fails inside Gradio with a generic error. Here the image task's `load_image` (training/tasks/image/
    decode.py) decodes it, after checking size and pixel count, and a bad file gets a message that says
    what is wrong.
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


def honesty_note(models: ModelSet) -> str:
    """What the default model can and cannot see, in words: the centre square of the photo at its input
    size, what it learned from, and a fixed set of labels."""
    try:
        predictor = models.get(None)
    except LookupError:
        return ""
    config, labels = predictor.task_config, predictor.labels
    size, learned = config.image_size, config.cache_size or config.image_size
    source = (f" It learned from {learned}x{learned} images enlarged to that size, so fine detail in a photo is "
              "new to it." if learned < size else "")
    return (f"The **{predictor.name}** model sees the centre square of the photo, resized to **{size}x{size} "
            f"pixels**, and knows only **{len(labels)} labels** ({', '.join(labels)}); anything else is forced "
            f"into one of them.{source}")


def build(models: ModelSet) -> None:
    gr.Markdown("Classify a photo. Upload a file, use the webcam, or paste from the clipboard. " + honesty_note(models))
    with gr.Row():
        with gr.Column():
            image = ImageFile(sources=["upload", "webcam", "clipboard"], type="filepath", label="Image",
                              height=320)
            picker = model_picker(models)
            button = gr.Button("Classify", variant="primary")
            examples = example_files(EXAMPLES, "*.png")
            if examples:
                gr.Examples(examples=examples, inputs=[image], examples_per_page=10,
                            label="Examples (CIFAR-10 validation images, three per label)")
        with gr.Column():
            label = gr.Label(num_top_classes=5, label="Prediction")
            heatmap = gr.Image(label="Where the model looked (Grad-CAM)", type="pil", height=256, interactive=False)
            gr.Markdown("Grad-CAM: convolutional maps weighted by how much they raise the predicted label; red "
                        "regions drove the prediction. The picture keeps the photo's shape: the bright centre "
                        "square is what the model saw, enlarged, and the dimmed sides were cropped off.")
            info = gr.Markdown(info_markdown(models, picker.value))
            report_panel(models, picker)

    @user_errors
    def classify_image(image_file, model_name=None):
        """Top labels with probabilities for one image."""
        predictor = models.get(model_name)
        if image_file is None:
            raise InputError("Upload an image, take a webcam photo or paste one first.")
        return predictor.predict(image_file)

    @user_errors
    def explain_image(image_file, model_name=None):
        """Grad-CAM heatmap over what the model saw, for its top label."""
        return models.get(model_name).explain(image_file)

    # The heatmap is a second step after a successful prediction, so /classify_image answers with the
    # labels alone and as fast as it can.
    classified = gr.on([button.click, image.upload], classify_image, [image, picker], label, api_name="classify_image")
    classified.success(explain_image, [image, picker], heatmap, api_name="explain_image")
    flag_unsure(classified, models, label, picker)
    model_info_endpoint(models, picker, info, "image_model_info")
