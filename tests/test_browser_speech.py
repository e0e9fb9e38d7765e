"""A real browser (headless Chromium via Playwright) records from the microphone in the Speech tab and reads
the label. Chromium's fake capture device plays a WAV file as the microphone (see the `browser` fixture)."""

from __future__ import annotations

import json

import pytest

from conftest import REPO

SHIPPED = {p.parent.name: json.loads(p.read_text())["labels"]
           for p in sorted((REPO / "checkpoints" / "speech").glob("*/config.json"))}
# The model the tab starts with (the speech task's default_model), which an API call without a name gets.
DEFAULT = "speech_commands" if "speech_commands" in SHIPPED else min(SHIPPED, default=None)


@pytest.mark.skipif(not SHIPPED, reason="no speech checkpoint in checkpoints/speech/")
def test_record_from_microphone_and_read_label(page):
    page.get_by_role("tab", name="Speech").click()
    tab = page.locator("#tab-speech")      # the panel of gr.Tab(id="speech")
    tab.get_by_role("button", name="Record audio").click()          # microphone source
    tab.get_by_role("button", name="Record", exact=True).click()
    page.wait_for_timeout(2000)                                     # two seconds of the fake microphone
    tab.get_by_role("button", name="Stop", exact=True).click()
    tab.get_by_role("button", name="Play", exact=True).wait_for()              # the recording is in the component
    tab.get_by_role("button", name="Recognise").click()
    label = tab.locator("[data-testid=label-output-value]")
    label.wait_for()
    text = label.inner_text().strip()
    assert text in SHIPPED[DEFAULT], text
    if DEFAULT == "speech_commands":
        assert text == "yes", text     # the fake microphone plays demo/examples/speech/command-yes-1.wav
    tab.locator(".js-plotly-plot, img").last.wait_for()                # the picture of what it heard


@pytest.mark.skipif("fsdd" not in SHIPPED, reason="fsdd is not shipped")
def test_digit_example_picks_the_digit_model(page):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Speech").click()
    tab = page.locator("#tab-speech")
    picker = tab.locator("input[aria-label='Model']")
    expect(picker).to_have_value(DEFAULT)
    tab.get_by_role("button", name="0 (1)", exact=True).click()      # a digit example, named by its word
    expect(picker).to_have_value("fsdd")               # ... chose the model it is for, and ran it
    label = tab.locator("[data-testid=label-output-value]")
    expect(label).to_have_text("0")
