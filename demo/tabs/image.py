"""The Image tab: upload, webcam or clipboard -> every label's confidence and where the model looked.
Components and wiring only."""

from __future__ import annotations

import base64
from pathlib import Path

import gradio as gr

from demo.batch import FileBatch, batch_panel
from demo.predictor import ModelSet
from demo.tabs.common import (example_caption, example_files, knows_panel, label_endpoint, label_value, model_panels,
                              model_picker, prediction_flow, result_record, user_errors)
from training.tasks import InputError
from training.tasks.image.decode import IMAGE_EXTENSIONS, MAX_FILE_BYTES

IMAGE_TYPES = IMAGE_EXTENSIONS   # the formats the image decoder opens, and no other
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "image"
GRADCAM_HELP = ("Grad-CAM: convolutional maps weighted by how much they raise the predicted label; the more a "
                "region drove the prediction, the warmer and stronger its colour (regions left as they were did "
                "not matter). The picture keeps the photo's shape: the bright centre square is what the "
                "model saw, and the dimmed sides were cropped off.")


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
            if len(payload.url) > MAX_FILE_BYTES * 4 // 3 + 100:  # base64: 4 characters per 3 bytes
                raise gr.Error(f"The image is over {MAX_FILE_BYTES // 2**20} MB; images up to "
                               f"{MAX_FILE_BYTES // 2**20} MB are accepted.", print_exception=False)
            try:
                return base64.b64decode(payload.url.split(",", 1)[1], validate=False)
            except (ValueError, IndexError):
                raise gr.Error("The image data could not be read.", print_exception=False) from None
        if payload.path is None:
            raise gr.Error("No image was received.", print_exception=False)
        return payload.path


def build(models: ModelSet) -> gr.Dropdown:
    gr.Markdown("Classify a photo: upload a file, use the webcam, paste from the clipboard, or pick an example.")
    with gr.Row(equal_height=False):
        with gr.Column():
            image = ImageFile(sources=["upload", "webcam", "clipboard"], type="filepath", label="Image", height=300,
                              alt_text="The photo to classify")
            picker = model_picker(models)
            button = gr.Button("Classify", variant="primary")
        with gr.Column():
            status = gr.Markdown(visible=False, elem_classes=["status"])
            label = gr.Label(num_top_classes=5, label="Prediction", elem_id="image-label")
            heatmap = gr.Image(label="Where the model looked (Grad-CAM)", type="pil", height=280, interactive=False,
                               alt_text="Grad-CAM heatmap over the photo: warm colours drove the prediction")
            gr.Markdown(GRADCAM_HELP)
            knows_panel(models, picker)
            with gr.Accordion("API result (JSON, as /classify_image_json returns it)", open=False):
                result = gr.JSON(label="Result")
    gallery = example_gallery()
    batch_panel(models, picker, FileBatch("image", IMAGE_TYPES, MAX_FILE_BYTES), api_name="classify_image_batch")
    model_panels(models, picker, "image_model_info")

    @user_errors
    def classify_image_json(image_file, model_name=None) -> dict:
        """Every label's confidence for one image, the unsure flag and the model's threshold."""
        predictor = models.get(model_name)
        if image_file is None:
            raise InputError("Upload an image, take a webcam photo or paste one first.")
        return result_record(predictor, predictor.predict(image_file))

    def classify_image(image_file, model_name=None):
        """Top labels with probabilities for one image."""
        return label_value(classify_image_json(image_file, model_name))

    @user_errors
    def explain_image(image_file, model_name=None):
        """Grad-CAM heatmap over what the model saw, for its top label."""
        return models.get(model_name).explain(image_file)

    prediction_flow(models, inputs=[image, picker], result=result, label=label, status=status,
                    analyse=classify_image_json, explain=explain_image, explain_outputs=[heatmap],
                    api_name="classify_image_json", explain_api_name="explain_image",
                    run_on=[button.click], rerun_on=[image.change, picker.change])
    label_endpoint(classify_image, [image, picker], [label], "classify_image")
    if gallery is not None:
        gallery.select(pick_example, None, image, api_visibility="private", queue=False)
    return picker


def example_gallery() -> gr.Gallery | None:
    """The examples as a gallery: each image large enough to see, captioned with its label; choosing one
    loads it into the input, which runs it."""
    files = example_files(EXAMPLES, "*.png")
    if not files:
        return None
    with gr.Accordion("Examples: CIFAR-10 validation images (32x32), three per label", open=True):
        return gr.Gallery(value=[(f, example_caption(f)) for f in files], columns=10, rows=3, height="auto",
                          allow_preview=False, object_fit="contain", label="Examples", show_label=False,
                          elem_id="image-examples")


def pick_example(evt: gr.SelectData):
    files = example_files(EXAMPLES, "*.png")
    return files[evt.index] if 0 <= evt.index < len(files) else None
