"""The Teach tab in the launched app: the /teach endpoint through gradio_client, and in Chromium an image
project taught by uploads and a sound project taught through the (fake) microphone, each then tried."""

from __future__ import annotations

import shutil
import time
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, image_png, launch_app, open_page
from test_teach import WORDS, tone


@pytest.fixture(scope="module")
def teach_server(tmp_path_factory):
    """The app with the Teach tab on a copy of the shipped checkpoints (taught models are saved there)."""
    root = tmp_path_factory.mktemp("teach-checkpoints")
    for task in ("image", "text", "speech"):
        shutil.copytree(REPO / "checkpoints" / task, root / task, ignore=shutil.ignore_patterns("resume.pt"))
    with launch_app(root, "--teach") as url:
        url.root = root
        yield url


@pytest.fixture(scope="module")
def teach_client(teach_server):
    from gradio_client import Client

    return Client(teach_server, verbose=False)


def moods_csv(path: Path) -> Path:
    path.write_text("text,label\n" + "".join(f'"{line}",{label}\n' for label, lines in WORDS.items() for line in lines),
                    encoding="utf-8")
    return path


def test_teach_endpoint_trains_a_model_the_text_endpoints_then_serve(teach_server, teach_client, tmp_path):
    from gradio_client import handle_file

    result = teach_client.predict("text", handle_file(str(moods_csv(tmp_path / "moods.csv"))), "moods",
                                  api_name="/teach")
    assert result["name"] == "moods" and set(result["labels"]) == set(WORDS) and 0 <= result["accuracy"] <= 1
    assert (teach_server.root / "text" / "moods" / "model.safetensors").is_file()      # saved as a checkpoint
    answer = teach_client.predict("what a wonderful party", "moods", api_name="/classify_text_json")
    assert answer["model"] == "moods" and set(answer["confidences"]) == set(WORDS)
    info = teach_client.predict("moods", api_name="/text_model_info")
    assert "moods" in info and "happy" in info
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="exists already"):
        teach_client.predict("text", handle_file(str(tmp_path / "moods.csv")), "moods", api_name="/teach")
    with pytest.raises(AppError, match="a folder named after the class"):
        flat = tmp_path / "flat.zip"
        with zipfile.ZipFile(flat, "w") as z:
            z.writestr("0.png", image_png(0))
        teach_client.predict("image", handle_file(str(flat)), "flat", api_name="/teach")
    assert teach_client.predict("i feel wonderful today", "emotion", api_name="/classify_text_json")["label"] == "joy"


def test_teach_is_off_on_a_space_unless_asked_for_and_no_teach_removes_it(monkeypatch):
    import app
    from demo.blocks import build_demo

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("TRIPTYCH_TEACH", raising=False)
    assert app.get_args_parser().parse_args([]).teach is True
    assert app.get_args_parser().parse_args(["--no-teach"]).teach is False
    monkeypatch.setenv("SPACE_ID", "someone/triptych")
    assert app.get_args_parser().parse_args([]).teach is False
    monkeypatch.setenv("TRIPTYCH_TEACH", "1")
    assert app.get_args_parser().parse_args([]).teach is True
    names = {fn.api_name for fn in build_demo(REPO / "checkpoints", "cpu", warm_up=False, teach=False).fns.values()}
    assert "teach" not in names and "classify_text_json" in names
    names = {fn.api_name for fn in build_demo(REPO / "checkpoints", "cpu", warm_up=False, teach=True).fns.values()}
    assert "teach" in names


def test_an_image_project_taught_by_uploads_and_tried(teach_page, tmp_path):
    from playwright.sync_api import expect

    files = {}
    for label, colour in (("red", 0), ("blue", 2)):
        files[label] = []
        for k in range(5):
            path = tmp_path / f"{label}-{k}.png"
            path.write_bytes(image_png(colour, size=48, seed=k))
            files[label].append(str(path))
    page = teach_page
    tab = page.locator("#tab-teach")
    tab.get_by_role("textbox", name="Model name").fill("colours")
    for k, label in enumerate(files, 1):
        tab.get_by_role("textbox", name=f"Class {k}", exact=True).fill(label)
        tab.locator(f"#teach-files-{k} input[type=file]").set_input_files(files[label])
    tab.get_by_text("Ready to train").wait_for()
    tab.get_by_role("button", name="Train", exact=True).click()
    tab.get_by_text("It is in the image tab's model picker now").wait_for()
    tab.get_by_role("img", name="Confusion matrix of the taught model on its held-out examples").wait_for()
    page.locator("#teach-try-image input[type=file]").set_input_files(files["blue"][0])
    tab.get_by_role("button", name="Try it", exact=True).click()
    expect(page.locator("#teach-try-label [data-testid=label-output-value]")).to_have_text("blue")
    page.get_by_role("tab", name="Image").click()
    page.locator("#tab-image").get_by_role("combobox", name="Model").click()
    expect(page.get_by_role("option", name="colours")).to_be_visible()     # in the picker, no restart


def test_a_sound_project_taught_through_the_microphone(teach_page, teach_server, tmp_path):
    from playwright.sync_api import expect

    page = teach_page
    tab = page.locator("#tab-teach")
    tab.get_by_role("radio", name="Sound").check()
    expect(tab.get_by_role("textbox", name="Model name")).to_have_value("my-sounds")   # the tab's suggestion
    tab.get_by_role("textbox", name="Model name").fill("spoken")
    tab.get_by_role("textbox", name="Class 1", exact=True).fill("yes")
    tab.get_by_role("textbox", name="Class 2", exact=True).fill("tone")
    tab.get_by_text("Class 1: capture examples one by one").click()
    mic = page.locator("#teach-mic-1")
    for _ in range(5):                       # the fake microphone plays a spoken "yes"
        mic.get_by_role("button", name="Record", exact=True).click()
        page.wait_for_timeout(1200)
        mic.get_by_role("button", name="Stop", exact=True).click()
        mic.get_by_role("button", name="Play", exact=True).wait_for()
        page.locator("#teach-add-1").click()
        mic.get_by_role("button", name="Play", exact=True).wait_for(state="detached")
    tones = []
    for k in range(5):
        tone(tmp_path / f"tone-{k}.wav", 500 + 50 * k)
        tones.append(str(tmp_path / f"tone-{k}.wav"))
    tab.locator("#teach-files-2 input[type=file]").set_input_files(tones)
    expect(page.locator("#teach-status")).to_contain_text("yes: 5")
    tab.get_by_text("Ready to train").wait_for()
    tab.get_by_role("button", name="Train", exact=True).click()
    tab.get_by_text("It is in the speech tab's model picker now").wait_for()
    assert (teach_server.root / "speech" / "spoken" / "config.json").is_file()
    page.locator("#teach-try-audio input[type=file]").set_input_files(tones[0])
    tab.get_by_role("button", name="Try it", exact=True).click()
    expect(page.locator("#teach-try-label [data-testid=label-output-value]")).to_have_text("tone")


@pytest.fixture()
def teach_page(browser, teach_server):
    with open_page(browser, teach_server, timeout_ms=120_000) as page:
        page.get_by_role("tab", name="Teach").click()
        yield page



def test_on_a_space_each_session_keeps_its_samples_and_models_to_itself(tmp_path):
    """private=True (a public Space): a taught model lives in the visitor's session folder, never in
    checkpoints/; it is served under a name no one can guess and found from that session alone; once the
    session is past its keep time, the sweep removes folder and model."""
    from types import SimpleNamespace

    from demo.blocks import load_models
    from demo.tabs.common import session_id
    from demo.teach_server import Sessions, Teacher
    from gradio.context import LocalContext

    models = load_models(REPO / "checkpoints", "cpu", warm_up=False)
    teacher = Teacher(models, REPO / "checkpoints", private=True, sessions=Sessions(tmp_path, keep=60))
    teacher.sessions.on_reclaim = teacher.forget_models
    mine, theirs = SimpleNamespace(session_hash="mine"), SimpleNamespace(session_hash="theirs")
    *_, result = teacher.teach_api("text", str(moods_csv(tmp_path / "moods.csv")), "moods", mine)
    key = result["name"]
    assert key.startswith("moods-") and len(key) == len("moods-") + 32       # 128 random bits
    folder = teacher.sessions.root / session_id(mine)
    assert (folder / "models" / "text" / "moods" / "model.safetensors").is_file()
    assert all(p.is_relative_to(folder / "models" / "text" / "moods") for p in folder.rglob("*") if p.is_file())
    assert key not in models["text"].names and not (REPO / "checkpoints" / "text" / "moods").exists()
    for request, found in ((mine, True), (theirs, False), (None, False)):
        LocalContext.request.set(request)
        assert (key in models["text"].predictors) is found
        assert (key in teacher.session_models("text", session_id(request))) is found
    LocalContext.request.set(None)
    assert teacher.sessions.sweep(now=time.monotonic() + 30) == []          # within the keep time: kept
    assert teacher.sessions.sweep(now=time.monotonic() + 61) == [folder]
    assert not folder.exists() and key not in dict(models["text"].predictors) and key not in models["text"].private


def test_cancel_stops_a_run_in_the_browser_and_keeps_nothing(teach_page, teach_server, tmp_path):
    from playwright.sync_api import expect

    page, tab = teach_page, teach_page.locator("#tab-teach")
    tab.get_by_role("textbox", name="Model name").fill("cancelled")
    for k, (label, colour) in enumerate((("red", 0), ("green", 1), ("blue", 2)), 1):
        paths = []
        for n in range(60):
            paths.append(tmp_path / f"{label}-{n}.png")
            paths[-1].write_bytes(image_png(colour, size=64, seed=n, noise=120))
        tab.get_by_role("textbox", name=f"Class {k}", exact=True).fill(label)
        tab.locator(f"#teach-files-{k} input[type=file]").set_input_files([str(p) for p in paths])
    tab.get_by_text("Ready to train").wait_for()
    tab.get_by_role("button", name="Train", exact=True).click()
    expect(page.locator("#teach-status")).to_contain_text("Training")      # it is training
    tab.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator("#teach-status")).to_contain_text("Cancelled", timeout=30_000)   # a busy server is slow
    page.wait_for_timeout(8000)       # longer than an epoch: a run that went on would have saved one by now
    assert not (teach_server.root / "image" / "cancelled").exists()
