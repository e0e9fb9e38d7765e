"""The app as people use it, in Chromium: outputs always belong to the inputs shown, examples run, the result
is on a phone's first screen, and every picture and control has an accessible name."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO

EXAMPLES = REPO / "demo" / "examples"
CIFAR = json.loads((REPO / "checkpoints" / "image" / "cifar10" / "config.json").read_text())["labels"]
SPEECH = {p.parent.name: json.loads(p.read_text())["labels"]
          for p in sorted((REPO / "checkpoints" / "speech").glob("*/config.json"))}


def label_text(tab) -> str:
    value = tab.locator("[data-testid=label-output-value]")
    return value.inner_text().strip() if value.count() else ""


def wait_label(tab, allowed) -> str:
    from playwright.sync_api import expect

    expect(tab.locator("[data-testid=label-output-value]")).to_have_text(re.compile("|".join(map(re.escape, allowed))))
    return label_text(tab)


def test_an_error_clears_every_output_of_the_earlier_image(page, tmp_path):
    page.get_by_role("tab", name="Image").click()
    tab = page.locator("#tab-image")
    tab.locator("input[type=file]").first.set_input_files(str(EXAMPLES / "image" / "horse-1.png"))
    wait_label(tab, CIFAR)
    heatmap = tab.get_by_role("img", name=re.compile("Grad-CAM heatmap"))
    heatmap.wait_for()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    tab.locator("input[type=file]").first.set_input_files(str(broken))
    page.get_by_text("not an image that can be read", exact=False).first.wait_for()   # says what is wrong
    assert label_text(tab) == ""                                             # ... and nothing of the horse stays
    heatmap.wait_for(state="detached")


def test_clicking_an_image_example_runs_it(page):
    page.get_by_role("tab", name="Image").click()
    tab = page.locator("#tab-image")
    gallery = tab.locator("#image-examples")
    first = gallery.get_by_role("img", name="ship").first
    box = first.bounding_box()
    assert box["width"] >= 64 and box["height"] >= 64, box        # a preview, not a 32-pixel dot
    first.click()
    assert wait_label(tab, CIFAR) in CIFAR
    tab.get_by_role("img", name=re.compile("Grad-CAM heatmap")).wait_for()


def test_text_example_runs_and_editing_clears_the_stale_result(page):
    page.get_by_role("tab", name="Text").click()
    tab = page.locator("#tab-text")
    tab.get_by_text("(joy)", exact=False).first.click()
    first = wait_label(tab, ["sadness", "joy", "love", "anger", "fear", "surprise"])
    assert tab.get_by_role("textbox", name="Text").input_value().strip()
    tab.get_by_role("textbox", name="Text").press_sequentially(" but")
    tab.locator("[data-testid=label-output-value]").wait_for(state="detached")     # no longer claims the old text
    tab.get_by_role("textbox", name="Text").press("Enter")
    assert wait_label(tab, [first] + ["sadness", "joy", "love", "anger", "fear", "surprise"])


@pytest.mark.skipif(not {"speech_commands", "fsdd"} <= set(SPEECH), reason="needs both shipped speech models")
def test_changing_the_speech_model_reruns_the_clip(page):
    page.get_by_role("tab", name="Speech").click()
    tab = page.locator("#tab-speech")
    tab.locator("input[type=file]").first.set_input_files(str(EXAMPLES / "speech" / "command-yes-1.wav"))
    assert wait_label(tab, SPEECH["speech_commands"]) == "yes"
    tab.get_by_role("combobox", name="Model").click()
    page.get_by_role("option", name="fsdd").click()
    assert wait_label(tab, SPEECH["fsdd"]) in SPEECH["fsdd"]      # the new model's answer, not the old one's


def test_on_a_phone_the_result_is_on_the_first_screen(browser, app_server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(app_server)
        tab = page.locator("#tab-image")
        tab.locator("input[type=file]").first.set_input_files(str(EXAMPLES / "image" / "cat-1.png"))
        wait_label(tab, CIFAR)
        label = page.locator("#image-label")
        page.wait_for_function("""() => { const b = document.getElementById('image-label').getBoundingClientRect();
                                          return b.top >= 0 && b.top < window.innerHeight - 100; }""")
        assert label.bounding_box()["y"] < 844
    finally:
        context.close()


UNNAMED = re.compile(r"^\s*- (button|combobox|textbox|checkbox|slider|radio|listbox)(\s*$|\s*\[|:)")


@pytest.mark.parametrize("name", ["Image", "Text", "Speech"])
def test_every_picture_has_alt_text_and_every_control_a_name(page, name):
    page.get_by_role("tab", name=name).click()
    tab = page.locator(f"#tab-{name.lower()}")
    if name == "Image":
        tab.locator("input[type=file]").first.set_input_files(str(EXAMPLES / "image" / "cat-1.png"))
        tab.get_by_role("img", name=re.compile("Grad-CAM heatmap")).wait_for()
    elif name == "Text":
        tab.get_by_role("textbox", name="Text").fill("i feel wonderful today")
        tab.get_by_role("textbox", name="Text").press("Enter")
        wait_label(tab, ["joy"])
    for accordion in tab.get_by_text("Validation confusion matrix and training curves").all():
        accordion.click()
    tab.get_by_role("img", name=re.compile("Training curves")).first.wait_for()
    pictures = tab.locator("img").evaluate_all(
        "imgs => imgs.filter(i => i.offsetParent !== null).map(i => i.getAttribute('alt') || '')")
    assert pictures and all(alt.strip() for alt in pictures), pictures
    unnamed = [line for line in tab.aria_snapshot().splitlines() if UNNAMED.match(line)]
    assert not unnamed, unnamed


def test_json_endpoints_give_every_label_and_the_notes_the_ui_shows(app_client, tmp_path):
    from gradio_client import handle_file

    from conftest import sine_wav

    clip = sine_wav(tmp_path / "long.wav", seconds=3.0)
    heard = app_client.predict(handle_file(str(clip)), "speech_commands", api_name="/recognize_speech_json")
    assert set(heard["confidences"]) == set(SPEECH["speech_commands"]) and heard["model"] == "speech_commands"
    assert any("loudest" in note for note in heard["notes"]), heard["notes"]    # which second it heard
    long = app_client.predict("i feel wonderful today " * 400, "emotion", api_name="/classify_text_json")
    assert any("longer than this model reads" in note for note in long["notes"]), long["notes"]
    image = app_client.predict(handle_file(str(EXAMPLES / "image" / "cat-1.png")), api_name="/classify_image_json")
    assert list(image["confidences"]) == sorted(CIFAR, key=lambda k: -image["confidences"][k])   # ranked, all ten
    assert image["label"] == next(iter(image["confidences"])) and image["unsure"] == (
        image["confidence"] < image["unsure_threshold"])
