"""Batch mode (demo/batch.py, reading through demo/uploads.py): uploads read without trusting them, one row
per item, the CSV, the endpoint."""

from __future__ import annotations

import csv
import io
import stat
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, free_port, image_png
from demo import batch, uploads
from demo.batch import FileBatch, Item, TextBatch, as_table, run_batch, write_csv
from training.tasks import InputError

# What the Image and Speech tabs pass (see the tabs' batch_panel calls).
IMAGES = FileBatch("image", (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"), 50 * 2**20)
CLIPS = FileBatch("clip", (".wav", ".flac", ".ogg", ".mp3"))
TEXTS = TextBatch(("text", "sentence", "content"))
EXAMPLES = REPO / "demo" / "examples"
CIFAR10 = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
BROKEN_PNG = (EXAMPLES / "image" / "cat-2.png").read_bytes()[:300]     # a truncated upload


@pytest.fixture(scope="module")
def image_model():
    from demo.predictor import Predictor

    return Predictor.load(REPO / "checkpoints" / "image" / "cifar10")


@pytest.fixture(scope="module")
def text_model():
    from demo.predictor import Predictor

    return Predictor.load(REPO / "checkpoints" / "text" / "emotion")


@pytest.fixture(scope="module")
def speech_model():
    from demo.predictor import Predictor

    return Predictor.load(REPO / "checkpoints" / "speech" / "speech_commands")


class FakePredictor:
    """Labels a, b, c; the text 'boom' is a fault, 'bad' an input error, and the confidence of 'a' is the
    text's length / 10."""
    name = "fake model"
    labels = ["a", "b", "c"]

    def __init__(self, threshold=0.5, delay=0.0):
        self.unsure_threshold = threshold
        self.delay = delay

    def predict(self, raw):
        time.sleep(self.delay)
        if raw == "boom":
            raise ZeroDivisionError("a bug")
        if raw == "bad":
            raise InputError("That is not a usable input.")
        p = min(len(raw), 10) / 10
        return {"a": p, "b": (1 - p) * 0.75, "c": (1 - p) * 0.25}


def write_zip(path: Path, members: dict, **kwargs) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, **kwargs) as z:
        for name, data in members.items():
            if isinstance(data, zipfile.ZipInfo):
                z.writestr(data, b"")
            else:
                z.writestr(name, data)
    return path


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples.astype("float32"), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def tone(seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * 440 * t)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


# ------------------------------------------------------------------------------------------- files

def test_several_image_files_one_broken_gives_one_error_row(tmp_path, image_model):
    paths = [EXAMPLES / "image" / f"{label}-1.png" for label in ("ship", "cat", "truck")]
    (tmp_path / "broken.png").write_bytes(BROKEN_PNG)
    (tmp_path / "notes.txt").write_text("not an image")
    paths[1:1] = [tmp_path / "broken.png", tmp_path / "notes.txt"]
    rows = run_batch(image_model, IMAGES.read(paths))
    assert [r["name"] for r in rows] == ["ship-1.png", "broken.png", "notes.txt", "cat-1.png", "truck-1.png"]
    assert "damaged or truncated" in rows[1]["error"] and rows[1]["label"] == ""
    assert rows[2]["error"].startswith("Not read: .txt is not one of the image types read here (.png, .jpg")
    good = [rows[0], rows[3], rows[4]]
    assert all(r["error"] == "" and r["label"] in CIFAR10 and r["second_label"] in CIFAR10 for r in good)
    assert all(r["label"] != r["second_label"] and 1 >= r["confidence"] >= r["second_confidence"] > 0 for r in good)
    assert sum(r["label"] == r["name"].split("-")[0] for r in good) >= 2
    threshold = image_model.unsure_threshold
    assert all(r["unsure"] == (r["confidence"] < threshold) for r in good)


def test_a_file_over_the_per_file_limit_gets_its_row(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(image_png(0, 64))
    items = FileBatch("image", (".png",), max_bytes=5 * 1024).read([big, EXAMPLES / "image" / "cat-1.png"])
    assert items[0].error == "The file is 10 KB; images up to 5 KB are accepted." and not items[1].error


def test_nothing_to_classify_is_a_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="No images were found"):
        IMAGES.read([tmp_path / "a.txt"])
    with pytest.raises(InputError, match="No images were found"):
        IMAGES.read([write_zip(tmp_path / "junk.zip", {"__MACOSX/._a.png": b"x", ".DS_Store": b"x"})])


# --------------------------------------------------------------------------------------------- zips

def test_zip_members_are_read_in_memory_and_junk_is_skipped(tmp_path, image_model, monkeypatch):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("a.png", image_png(0, 8))
    members = {"photos/": zipfile.ZipInfo("photos/"),
               "photos/ship.png": (EXAMPLES / "image" / "ship-1.png").read_bytes(),
               "photos/cat.png": (EXAMPLES / "image" / "cat-1.png").read_bytes(), "photos/broken.png": BROKEN_PNG,
               "__MACOSX/photos/._ship.png": b"\x00\x05\x16\x07", "photos/.DS_Store": b"junk", ".hidden.png": b"x",
               "readme.md": b"# photos", "inner.zip": inner.getvalue()}
    archive = write_zip(tmp_path / "photos.zip", members)
    watched = tmp_path / "tmp"
    watched.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(watched))
    before, cwd_before = files_under(tmp_path), set(Path.cwd().iterdir())

    items = IMAGES.read([archive])
    rows = run_batch(image_model, items)
    assert [r["name"] for r in rows] == ["photos.zip/photos/ship.png", "photos.zip/photos/cat.png",
                                         "photos.zip/photos/broken.png", "photos.zip/readme.md", "photos.zip/inner.zip"]
    assert rows[0]["label"] in CIFAR10 and rows[1]["label"] in CIFAR10 and not rows[0]["error"]
    assert "damaged" in rows[2]["error"] and ".md is not one of" in rows[3]["error"]
    assert "zip inside a zip" in rows[4]["error"]
    assert files_under(tmp_path) == before and set(Path.cwd().iterdir()) == cwd_before   # nothing extracted
    csv_path = Path(write_csv(as_table(rows), image_model.name))
    assert csv_path.parent.parent == watched and files_under(watched) == {csv_path.parent, csv_path}


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


REFUSED = {
    "traversal": ({"ok.png": b"x", "../x.png": b"x"}, "points outside the archive"),
    "deep_traversal": ({"photos/../../x.png": b"x"}, "points outside the archive"),
    "backslash_traversal": ({"..\\x.png": b"x"}, "points outside the archive"),
    "absolute": ({"/etc/x.png": b"x"}, "points outside the archive"),
    "windows_absolute": ({"C:/x.png": b"x"}, "points outside the archive"),
    "symlink": ({"ok.png": b"x", "link.png": "symlink"}, "symbolic link"),
    "bomb": ({"bomb.png": bytes(50 * 2**20)}, "zip bomb"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_zips_are_refused_before_anything_is_read(tmp_path, case):
    members, message = REFUSED[case]
    path = tmp_path / f"{case}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            if data == "symlink":
                z.writestr(symlink_info(name), "/etc/passwd")
            else:
                info = zipfile.ZipInfo(name)   # written as given: ZipFile.write would clean the name
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data)
    assert path.stat().st_size < 200_000
    before = files_under(tmp_path.parent)
    with pytest.raises(InputError, match=message):
        IMAGES.read([path])
    assert files_under(tmp_path.parent) == before


def test_a_zip_with_too_many_entries_is_refused(tmp_path):
    path = write_zip(tmp_path / "many.zip", {f"{i}.png": b"" for i in range(uploads.MAX_ZIP_ENTRIES + 1)})
    with pytest.raises(InputError, match=f"zips of at most {uploads.MAX_ZIP_ENTRIES:,}"):
        IMAGES.read([path])
    # The whole batch, not just that zip's row: beside a good image it is still refused.
    (tmp_path / "good.png").write_bytes(image_png(1, 16))
    with pytest.raises(InputError, match=f"^many.zip has more than {uploads.MAX_ZIP_ENTRIES:,} entries; zips of"):
        IMAGES.read([tmp_path / "good.png", path])


def test_too_much_uncompressed_data_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_TOTAL_BYTES", 2 * 2**20)
    noise = np.random.default_rng(0).integers(0, 256, 2**20, dtype=np.uint8).tobytes()   # ratio ~1, no bomb
    path = write_zip(tmp_path / "big.zip", {f"{i}.png": noise for i in range(3)})
    with pytest.raises(InputError, match="holds more than 2 MB of images; at most 2 MB are read at once"):
        IMAGES.read([path])
    (tmp_path / "a.png").write_bytes(noise * 3)
    with pytest.raises(InputError, match="holds more than 2 MB of images"):
        IMAGES.read([tmp_path / "a.png"])


def test_a_member_larger_than_its_header_says_is_not_read_past_it(tmp_path):
    """A forged directory entry (10 MB of zeros declared as 100 bytes) reads 100 bytes, then fails its CRC."""
    path = write_zip(tmp_path / "forged.zip", {"a.png": bytes(10 * 2**20), "b.png": image_png(1, 16)})
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):   # local header, central directory
        at = data.find(signature)
        data[at + offset:at + offset + 4] = struct.pack("<I", 100)
    path.write_bytes(bytes(data))
    items = IMAGES.read([path])
    assert [i.size for i in items] == [100, len(image_png(1, 16))]
    with pytest.raises(InputError, match="could not be read from the zip"):
        batch.item_data(items[0])
    assert batch.item_data(items[1]) == image_png(1, 16)


def test_a_file_that_is_not_a_zip_gets_its_row(tmp_path):
    (tmp_path / "fake.zip").write_bytes(b"not a zip at all")
    items = IMAGES.read([tmp_path / "fake.zip", EXAMPLES / "image" / "cat-1.png"])
    assert "not a zip file" in items[0].error and not items[1].error


def test_over_the_item_limit_is_refused_with_a_clear_message(tmp_path, monkeypatch):
    txt = tmp_path / "lines.txt"
    txt.write_text("\n".join(f"line {i}" for i in range(uploads.MAX_ITEMS + 1)))
    with pytest.raises(InputError, match=f"holds more than {uploads.MAX_ITEMS} texts; at most {uploads.MAX_ITEMS}"):
        TEXTS.read([txt])
    monkeypatch.setattr(uploads, "MAX_ITEMS", 2)
    path = write_zip(tmp_path / "three.zip", {f"{i}.png": image_png(i, 8) for i in range(3)})
    with pytest.raises(InputError, match="holds more than 2 images; at most 2"):
        IMAGES.read([path])


# -------------------------------------------------------------------------------------------- speech

def test_a_zip_of_clips_through_the_speech_tab_hooks(tmp_path, speech_model):
    from training.tasks.speech import listen

    clips = {"yes.wav": (EXAMPLES / "speech" / "command-yes-1.wav").read_bytes(), "tone.wav": wav_bytes(tone()),
             "silent.wav": wav_bytes(np.zeros(16000)), "empty.wav": b"", "blip.wav": wav_bytes(tone(0.01)),
             "noise.wav": b"RIFF\x00\x00\x00\x00WAVEjunk"}
    items = CLIPS.read([write_zip(tmp_path / "clips.zip", clips)])
    rows = run_batch(speech_model, items, to_raw=lambda p, data: listen(p.task_config, data),
                     notes=lambda p, heard: heard.notes)
    by_name = {r["name"].split("/")[-1]: r for r in rows}
    assert by_name["yes.wav"]["label"] == "yes" and not by_name["yes.wav"]["error"]
    assert by_name["tone.wav"]["label"] and by_name["tone.wav"]["notes"] == ""
    assert "silent" in by_name["silent.wav"]["notes"] and by_name["silent.wav"]["label"]
    assert "empty" in by_name["empty.wav"]["error"] and "long" in by_name["blip.wav"]["error"]
    assert by_name["noise.wav"]["error"] and not by_name["noise.wav"]["label"]
    assert list(rows[0]) == ["name", "label", "confidence", "second_label", "second_confidence", "unsure", "notes",
                             "error"]


# ---------------------------------------------------------------------------------------------- text

def texts(tmp_path, name: str, content: bytes | str) -> list[tuple[str, str]]:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return [(item.name, item.source) for item in TEXTS.read([path])]


def test_txt_one_text_per_non_empty_line(tmp_path):
    got = texts(tmp_path, "a.txt", "\ufeffi feel great\r\n\r\n   \nso sad today, really\rangry\n")
    assert got == [("a.txt:1", "i feel great"), ("a.txt:4", "so sad today, really"), ("a.txt:5", "angry")]


def test_csv_with_bom_a_text_column_quoting_and_commas(tmp_path):
    content = ('\ufeffid,Text,label\n1,"i feel happy, very happy",joy\n2,"she said ""no""\nand left",sadness\n'
               '3,,x\n4,plain,fear\n')
    assert texts(tmp_path, "a.csv", content) == [("a.csv:2", "i feel happy, very happy"),
                                                 ("a.csv:4", 'she said "no"\nand left'), ("a.csv:6", "plain")]


def test_csv_dialect_is_sniffed(tmp_path):
    content = "score;sentence\n1;i am so glad\n2;what a dreadful day\n"
    assert [t for _, t in texts(tmp_path, "semi.csv", content)] == ["i am so glad", "what a dreadful day"]
    tabbed = "id\treview\tstars\n1\tloved it\t5\n2\thated it\t1\n"
    assert [t for _, t in texts(tmp_path, "tab.csv", tabbed)] == ["loved it", "hated it"]   # first text column


def test_csv_with_one_column_and_no_known_header_reads_every_row(tmp_path):
    assert [t for _, t in texts(tmp_path, "one.csv", "i feel fine\ni am scared\n")] == ["i feel fine", "i am scared"]


def test_csv_row_without_the_text_cell_gets_an_error_row(tmp_path):
    (tmp_path / "short.csv").write_text("id,text\n1,hello there\n2\n")
    items = TEXTS.read([tmp_path / "short.csv"])
    assert items[0].source == "hello there" and items[1].name == "short.csv:3" and "no 'text' cell" in items[1].error


def test_non_utf8_text_is_refused_in_words(tmp_path):
    (tmp_path / "latin.txt").write_bytes("je suis très heureux\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.txt is not UTF-8 text \(byte 0xe8 at position 10\)"):
        TEXTS.read([tmp_path / "latin.txt"])


def test_text_batch_with_the_emotion_model(tmp_path, text_model):
    (tmp_path / "a.txt").write_text("i feel wonderful today\n\ni am so angry at you\n" + "happy " * 2000 + "\n")
    from training.tasks import text as text_task

    def truncated(p, text):
        return ["cut short"] if text_task.tokenize(p.task_config, text)[1] else []

    rows = run_batch(text_model, TEXTS.read([tmp_path / "a.txt"]), notes=truncated)
    assert [r["label"] for r in rows[:2]] == ["joy", "anger"]
    assert rows[0]["text"] == "i feel wonderful today" and rows[2]["text"].endswith("…")
    assert len(rows[2]["text"]) == batch.PREVIEW_CHARS + 1 and rows[2]["notes"] == "cut short"


# ------------------------------------------------------------------------------------ rows and CSV

def test_one_faulty_item_loses_nothing_and_unsure_follows_the_threshold():
    items = [Item("l:1", "abcdefgh"), Item("l:2", "boom"), Item("l:3", "bad"), Item("l:4", "ab"),
             Item("l:5", error="Not read.")]
    rows = run_batch(FakePredictor(threshold=0.5), items)
    assert [(r["label"], r["confidence"], r["unsure"]) for r in rows] == [
        ("a", 0.8, False), ("", None, None), ("", None, None), ("b", 0.6, False), ("", None, None)]
    assert rows[0]["second_label"] == "b" and rows[0]["second_confidence"] == 0.15
    assert rows[1]["error"] == "This item could not be classified (ZeroDivisionError)."
    assert rows[2]["error"] == "That is not a usable input." and rows[4]["error"] == "Not read."
    assert run_batch(FakePredictor(threshold=0.7), [Item("x", "ab")])[0]["unsure"] is True


def test_a_batch_past_its_time_limit_says_which_items_did_not_run():
    seen = []
    rows = run_batch(FakePredictor(delay=0.05), [Item(f"l:{i}", "abc") for i in range(3)], max_seconds=0.01,
                     progress=lambda done, total: seen.append((done, total)))
    assert rows[0]["label"] == "b" and all("time limit" in r["error"] for r in rows[1:])
    assert seen == [(0, 3), (1, 3), (2, 3)]


def test_csv_matches_the_table_and_defuses_formulas(tmp_path):
    items = [Item("a.csv:2", "=HYPERLINK(\"http://x\")"), Item("a.csv:3", "naïve café, ok"), Item("a.csv:4", "boom")]
    table = as_table(run_batch(FakePredictor(), items))
    path = Path(write_csv(table, "my model/v1", tmp_path))
    assert path.name == "my_model_v1-predictions.csv" and path.parent.parent == tmp_path
    with path.open(encoding="utf-8-sig", newline="") as f:
        written = list(csv.reader(f))
    assert written[0] == table["headers"] == ["name", "text", "label", "confidence", "second_label",
                                              "second_confidence", "unsure", "error"]
    expected = [["" if v is None else str(v) for v in row] for row in table["data"]]
    expected[0][1] = "'" + expected[0][1]
    assert written[1:] == expected


# ------------------------------------------------------------------------------------------- the app

def test_batch_endpoint_through_gradio_client(tmp_path):
    import gradio as gr
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from demo.predictor import discover
    from demo.tabs.common import model_picker

    models = discover(REPO / "checkpoints", "text")
    with gr.Blocks() as app:
        picker = model_picker(models)
        batch.batch_panel(models, picker, TEXTS, api_name="classify_text_batch")
    (tmp_path / "a.txt").write_text("i feel wonderful today\ni am so angry at you\n")
    (tmp_path / "b.csv").write_text('label,text\nfear,"i am scared, really scared"\njoy\n')
    (tmp_path / "latin.txt").write_bytes("très\n".encode("latin-1"))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        table, csv_file = client.predict([handle_file(str(tmp_path / "a.txt")), handle_file(str(tmp_path / "b.csv"))],
                                         "emotion", api_name="/classify_text_batch")
        column = {name: [row[j] for row in table["data"]] for j, name in enumerate(table["headers"])}
        assert column["name"] == ["a.txt:1", "a.txt:2", "b.csv:2", "b.csv:3"]
        assert column["label"] == ["joy", "anger", "fear", ""] and column["error"][3] == "This row has no 'text' cell."
        assert Path(csv_file).name == "emotion-predictions.csv"
        with open(csv_file, encoding="utf-8-sig", newline="") as f:
            assert [row[2] for row in csv.reader(f)] == ["label", "joy", "anger", "fear", ""]
        with pytest.raises(AppError, match="not UTF-8 text"):
            client.predict([handle_file(str(tmp_path / "latin.txt"))], "emotion", api_name="/classify_text_batch")
        table, _ = client.predict([handle_file(str(tmp_path / "a.txt"))], api_name="/classify_text_batch")
        assert len(table["data"]) == 2    # still serving, and the model name is optional
        assert [p["parameter_name"] for p in client.view_api(print_info=False, return_format="dict")[
            "named_endpoints"]["/classify_text_batch"]["parameters"]] == ["files", "model_name"]
    finally:
        app.close()


def test_a_cancelled_batch_runs_no_further_item():
    calls = []

    class Counting(FakePredictor):
        def predict(self, raw):
            calls.append(raw)
            return super().predict(raw)

    rows = batch.batch_rows(Counting(), [Item(f"l:{i}", "abc") for i in range(100)])
    assert [next(rows)["label"] for _ in range(2)] == ["b", "b"]
    rows.close()                                  # what Cancel does to the panel's generator, between items
    assert len(calls) == 2
