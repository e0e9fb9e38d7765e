"""A real browser (headless Chromium via Playwright) uploads an image in the Image tab and reads the label."""

from __future__ import annotations

from conftest import REPO

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_upload_image_and_read_label(page):
    page.get_by_role("tab", name="Image").click()
    tab = page.locator("#tab-image")   # gr.Tab(elem_id="tab-image")
    tab.locator("input[type=file]").first.set_input_files(str(REPO / "demo" / "examples" / "image" / "horse-1.png"))
    tab.get_by_role("button", name="Classify", exact=True).click()
    label = tab.locator("[data-testid=label-output-value]")
    label.wait_for()
    text = label.inner_text().strip()
    assert text in LABELS, text
