"""The launched app's Text tab through its HTTP API (gradio_client) and in a real browser; hostile texts."""

from __future__ import annotations

import json
import urllib.request

import pytest

EMOTIONS = {"sadness", "joy", "love", "anger", "fear", "surprise"}


def classify(client, text, **kwargs):
    return client.predict(text, api_name="/classify_text", **kwargs)


def test_classify_text_with_only_the_text(app_client):
    result = classify(app_client, "i feel wonderful today")
    confidences = result["confidences"]
    assert result["label"] == confidences[0]["label"] == "joy"
    assert {c["label"] for c in confidences} == EMOTIONS   # every label, not a top 5
    assert [c["confidence"] for c in confidences] == sorted((c["confidence"] for c in confidences), reverse=True)


def test_shipped_model_gets_the_examples_right(app_client):
    from demo.tabs.text import load_examples

    rows = load_examples()
    assert len(rows) == 12 and {r["label"] for r in rows} == EMOTIONS    # two real sentences per label
    wrong = {r["text"]: got for r in rows if (got := classify(app_client, r["text"])["label"]) != r["label"]}
    assert len(wrong) <= 2, wrong


def test_explanation_covers_the_words(app_client):
    pieces, note = app_client.predict("I feel wonderful today!", api_name="/explain_text")
    tokens = [p["token"] for p in pieces]
    scores = {p["token"]: p["class_or_confidence"] for p in pieces if p["class_or_confidence"] is not None}
    assert "".join(tokens) == "I feel wonderful today!"
    assert all(-1 <= v <= 1 for v in scores.values()) and scores["wonderful"] == max(scores.values())
    assert "occlusion" in note


def test_model_info_panel(app_client):
    info = app_client.predict(api_name="/text_model_info")
    assert "**emotion**" in info and "Validation accuracy" in info and "surprise" in info


def test_unknown_model_name_is_a_clear_error(app_client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="No [a-z]+ model named 'nope'. Available: "):   # and which there are
        classify(app_client, "i feel fine", model_name="nope")


REJECTED = {"empty": ("", "empty"), "whitespace": (" \n\t  \u3000", "only spaces"),
            "control_only": ("\x00\x01\x1b\x7f", "only spaces")}
ACCEPTED = {"emoji_only": "😀😂🔥🎉", "punctuation_only": "?!... ;-) ???", "nul_and_control": "i feel\x00 so\x07 happy\x1b[0m",
            "right_to_left": "أنا سعيد جدا اليوم", "mixed_bidi": "i feel \u202eyppah\u202c today", "cjk": "我今天很高兴",
            "long_word": "a" * 5000, "100k_chars": "i feel so happy today " * 4546}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_blank_text_gets_clear_message_and_app_keeps_serving(app_client, name):
    from gradio_client.exceptions import AppError

    text, expected = REJECTED[name]
    with pytest.raises(AppError, match=expected):
        classify(app_client, text)
    assert classify(app_client, "i feel wonderful today")["label"] == "joy"


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_hostile_text_is_classified(app_client, name):
    result = classify(app_client, ACCEPTED[name])              # (their times: bench/text_latency.py --hostile)
    assert result["label"] in EMOTIONS
    assert classify(app_client, "i feel wonderful today")["label"] == "joy"


def call_raw(base_url: str, api_name: str, data: list) -> str:
    """POST to the queue API with JSON escapes (ensure_ascii), which can carry lone surrogates that the
    client library refuses to encode; returns the event stream text."""
    url = f"{base_url}gradio_api/call/{api_name}"
    body = json.dumps({"data": data}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        event = json.load(r)["event_id"]
    with urllib.request.urlopen(f"{url}/{event}", timeout=60) as r:
        return r.read().decode()


def test_lone_surrogates_are_classified(app_server, app_client):
    for text in ("i feel \ud800 happy \udfff", "\ud83d", "\udc00" * 1000):
        stream = call_raw(app_server, "classify_text", [text, None])
        assert "event: complete" in stream and '"label"' in stream, stream[:300]
    assert classify(app_client, "i feel wonderful today")["label"] == "joy"


def test_long_text_is_truncated_with_a_note(app_client):
    pieces, note = app_client.predict("i feel so happy today " * 500, api_name="/explain_text")
    assert "only the beginning was classified" in note
    assert pieces[-1]["token"].endswith("…") and pieces[-1]["class_or_confidence"] is None


def test_type_sentence_press_enter_and_read_label(page):
    page.get_by_role("tab", name="Text").click()
    tab = page.locator("#tab-text")   # gr.Tab(elem_id="tab-text")
    box = tab.get_by_placeholder("Type a sentence")
    box.fill("i was terrified walking home alone in the dark last night")
    box.press("Enter")
    label = tab.locator("[data-testid=label-output-value]")
    label.wait_for()
    assert label.inner_text().strip() == "fear"
    tab.get_by_text("terrified", exact=True).wait_for()   # the explanation shows the words


def test_the_curl_calls_docs_api_shows_return_the_structured_result(app_server):
    """docs/api.md's curl calls: POST every parameter, then read the result from the event stream."""
    import json
    import urllib.request

    from conftest import REPO

    page = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    assert "curl -s -X POST $URL/gradio_api/call/classify_text_json" in page
    assert """-d '{"data": ["i feel wonderful today", "emotion"]}'""" in page
    assert "curl -s -N $URL/gradio_api/call/classify_text_json/EVENT_ID" in page
    request = urllib.request.Request(f"{app_server}gradio_api/call/classify_text_json", method="POST",
                                     data=json.dumps({"data": ["i feel wonderful today", "emotion"]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        event_id = json.load(r)["event_id"]
    with urllib.request.urlopen(f"{app_server}gradio_api/call/classify_text_json/{event_id}", timeout=60) as r:
        stream = r.read().decode()
    assert "event: complete" in stream, stream
    (result,) = json.loads(stream.split("data: ", 1)[1].splitlines()[0])
    assert result["model"] == "emotion" and result["label"] == "joy" and not result["unsure"]
    assert set(result["confidences"]) == EMOTIONS and result["notes"] == []
    assert abs(sum(result["confidences"].values()) - 1) < 1e-4
