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


# ------------------------------------------------------------------------------------------- Listen mode

LOOP_SECONDS = 3.0   # what the fake microphone plays, over and over: silence, a word, silence


@pytest.fixture(scope="module")
def word_in_silence(tmp_path_factory):
    """1 s of silence, demo/examples/speech/command-yes-1.wav (1 s), 1 s of silence: a keyword inside a longer
    recording. Chromium's fake microphone loops it."""
    import numpy as np
    import soundfile as sf

    word, rate = sf.read(REPO / "demo" / "examples" / "speech" / "command-yes-1.wav", dtype="float32")
    x = np.concatenate([np.zeros(rate), word, np.zeros(rate)])
    assert len(x) == LOOP_SECONDS * rate
    path = tmp_path_factory.mktemp("mic") / "yes-in-silence.wav"
    sf.write(path, x, rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def listening_browser(playwright_driver, word_in_silence):
    """A second Chromium, whose microphone plays `word_in_silence`."""
    from conftest import launch_chromium

    b = launch_chromium(playwright_driver, word_in_silence)
    yield b
    b.close()


@pytest.mark.skipif("speech_commands" not in SHIPPED, reason="speech_commands is not shipped")
def test_listen_mode_hears_a_word_inside_a_longer_recording(listening_browser, app_server):
    import re

    from playwright.sync_api import expect

    from conftest import open_page
    from test_app_ux import UNNAMED

    with open_page(listening_browser, app_server) as page:
        page.get_by_role("tab", name="Speech").click()
        tab = page.locator("#tab-speech")
        tab.get_by_role("radio", name="Listen").click()
        expect(tab.get_by_role("button", name="Recognise")).to_be_hidden()      # the clip mode's controls went
        unnamed = [line for line in tab.aria_snapshot().splitlines() if UNNAMED.match(line)]
        assert not unnamed, unnamed
        mic = tab.locator("#speech-mic")
        mic.get_by_role("button", name="Record", exact=True).click()
        heard, history = tab.locator("#speech-heard"), tab.locator("#speech-heard-history")
        expect(heard).to_contain_text("Heard: yes", timeout=20_000)             # as it is spoken ...
        expect(mic.get_by_role("button", name="Stop", exact=True)).to_be_visible()   # ... while still streaming
        # The loop says it again: each utterance is announced once, LOOP_SECONDS apart in the stream.
        expect(history.get_by_role("listitem").nth(1)).to_be_visible(timeout=20_000)
        times = [float(t) for t in re.findall(r"([\d.]+) s: yes", history.inner_text())]     # newest first
        gaps = [newer - older for newer, older in zip(times, times[1:])]
        assert len(times) >= 2 and all(abs(gap - LOOP_SECONDS) <= 0.5 for gap in gaps), history.inner_text()
        mic.get_by_role("button", name="Stop", exact=True).click()
        expect(heard).to_contain_text("Not listening")
        expect(history).to_contain_text("yes")                                  # what was heard stays listed
        tab.get_by_role("radio", name="Recognise a clip").click()
        expect(tab.get_by_role("button", name="Recognise")).to_be_visible()
