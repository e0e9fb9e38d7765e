"""Teach on a public Space survives its visitors: hostile projects are refused in words, every folder and model
a session makes is reclaimed whatever the outcome (success, failure, cancel, a taken name, a session that
never closes), quotas hold, and a visitor's model answers to that visitor alone, through every endpoint of
a launched app in Space mode (SPACE_ID set, TRIPTYCH_TEACH=1)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import hostile_files as hf
from conftest import REPO, image_png, launch_app
from demo import teach, teach_server
from demo.lanes import Lane
from demo.tabs.common import session_id
from demo.teach import Project, problems, project_from_upload
from demo.teach_server import Sessions, Teacher
from test_teach import WORDS
from test_teach_app import moods_csv
from training.tasks import InputError

pytestmark = pytest.mark.usefixtures("torch_one_thread")
CHECKPOINTS = REPO / "checkpoints"
MINE, THEIRS = SimpleNamespace(session_hash="mine"), SimpleNamespace(session_hash="theirs")


@pytest.fixture
def teacher(tmp_path):
    """A Space's Teach (private models) on the shipped text models, its sessions under tmp_path."""
    from demo.blocks import load_models

    models = load_models(CHECKPOINTS, "cpu", warm_up=False)
    t = Teacher(models, CHECKPOINTS, private=True, sessions=Sessions(tmp_path / "sessions", keep=60))
    t.sessions.on_reclaim = t.forget_models
    yield t
    for folder in list(t.sessions.root.glob("*")):
        t.forget_models(folder)


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def taught(teacher: Teacher, data: Path, name: str, request=MINE, task: str = "text") -> dict:
    *_, result = teacher.teach_api(task, str(data), name, request)
    return result


def colours_zip(tmp_path: Path, classes=("red", "blue"), name: str = "colours.zip") -> Path:
    members = {f"{label}/{k}.png": image_png(c, seed=k) for c, label in enumerate(classes) for k in range(5)}
    return written(tmp_path / name, hf.zip_of(members))


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------- hostile projects

@pytest.mark.parametrize("case,data,message", [
    ("a cell of 200,000 characters", lambda: hf.long_cell_csv(200_000), "more than 131,072 characters"),
    ("20,000 columns", lambda: hf.wide_csv(20_000, 3), "20,000 cells"),
    ("1,200 rows", lambda: b"text,label\n" + b"hello,a\n" * 1_200, "more than 1,001 lines"),
    ("a label that is a path", lambda: b"text,label\nhello,../etc\n", "A label '../etc' is not usable"),
])
def test_hostile_teach_csvs_are_refused_in_words(tmp_path, case, data, message):
    with pytest.raises(InputError, match=message):
        project_from_upload("text", written(tmp_path / "project.csv", data()), None)


def test_class_names_that_datasets_reads_as_missing_train_as_the_words_they_are(tmp_path):
    names = {"None": [*WORDS["happy"], "null"], "NA": [*WORDS["grumpy"], "NaN"]}
    rows = "".join(f'"{text}",{label}\n' for label, texts in names.items() for text in texts)
    project = project_from_upload("text", written(tmp_path / "nulls.csv", ("text,label\n" + rows).encode()), None)
    assert project.counts() == {"None": 7, "NA": 7} and problems(project) == []
    result = teach.teach(project, tmp_path / "nulls", checkpoints=CHECKPOINTS)
    assert sorted(result["labels"]) == ["NA", "None"]


@pytest.mark.parametrize("names", [("cat", "cat"), ("Cat", "cat"), ("DOG", "dog ")])
def test_two_classes_of_one_name_are_refused_not_merged_silently(names):
    project = Project("text")
    for name, texts in zip(names, WORDS.values()):
        project.add(name.strip(), texts)
    found = " ".join(problems(project))
    assert "Two classes have one name" in found and sum(project.counts().values()) == 12   # no sample lost


def test_class_folders_differing_in_case_are_refused(tmp_path):
    project = project_from_upload("image", colours_zip(tmp_path, ("Cat", "cat")), None)
    assert "Two classes have one name ('Cat' and 'cat'" in " ".join(problems(project))


def test_a_project_that_would_cost_too_much_to_decode_is_refused_before_its_dataset_is_written(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(teach, "MAX_PROJECT_PIXELS", 10 * 4000 * 3000 - 1)
    samples = {}
    for label in ("a", "b"):
        samples[label] = [str(written(tmp_path / f"{label}{k}.png", hf.png(Image.new("L", (4000, 3000)))))
                          for k in range(5)]
    written_before = set(Path(tmp_path).rglob("*"))
    with pytest.raises(InputError, match="megapixels in all; at most"):
        teach.teach(Project("image", samples), tmp_path / "big", checkpoints=CHECKPOINTS)
    assert set(Path(tmp_path).rglob("*")) == written_before


def test_preparing_a_project_stops_when_cancelled_and_extracts_nothing_more(tmp_path):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3       # cancelled after three members

    with pytest.raises(teach.Stopped, match="Cancelled"):
        project_from_upload("image", colours_zip(tmp_path), tmp_path / "upload", stop=stop)
    assert len(files_in(tmp_path / "upload")) == 3


# ---------------------------------------------------------------------------------------------- disk

def test_a_name_in_use_is_refused_before_the_upload_is_extracted(teacher, tmp_path):
    folder = teacher.sessions.folder(session_id(MINE))
    (folder / "models" / "image" / "colours").mkdir(parents=True)
    with pytest.raises(InputError, match="exists already"):
        teacher.job("image", str(colours_zip(tmp_path)), "colours", folder)
    assert files_in(folder) == []


@pytest.mark.parametrize("case,data,message", [
    ("flat zip", lambda p: written(p / "flat.zip", hf.zip_of({"0.png": image_png(0)})), "a folder named after"),
    ("traversal", lambda p: written(p / "evil.zip", hf.zip_of({"a/0.png": b"x", "../b/1.png": b"x"})), "outside"),
    ("too few samples", lambda p: written(p / "few.zip", hf.zip_of({"a/0.png": image_png(0), "b/0.png": image_png(1)})),
     "needs at least 5"),
    ("damaged images", lambda p: written(p / "bad.zip", hf.zip_of({f"{c}/{k}.png": b"not a png" for c in "ab"
                                                                    for k in range(5)})), "not an image|damaged"),
])
def test_a_failed_teach_leaves_nothing_in_the_session(teacher, tmp_path, case, data, message):
    with pytest.raises(InputError, match=message):
        taught(teacher, data(tmp_path), "broken", task="image")
    assert files_in(teacher.sessions.root) == []


def test_a_cancelled_teach_leaves_nothing(teacher, tmp_path):
    folder = teacher.sessions.folder(session_id(MINE))
    job = teacher.job("text", str(moods_csv(tmp_path / "moods.csv")), "moods", folder)
    steps = teacher.run(job)
    for state, _ in steps:
        if state == "running":
            break
    steps.close()                       # what a cancel does: the generator is closed, the run stops
    deadline = time.monotonic() + 60
    while not job.events.empty() or job.result is None and job.error is None and time.monotonic() < deadline:
        job.drain()
        time.sleep(0.1)
    assert job.error is not None and not teacher.succeeded(job) and files_in(teacher.sessions.root) == []


def test_sessions_are_reclaimed_whether_or_not_they_close(tmp_path):
    sessions = Sessions(tmp_path, keep=60)
    open_one, closed = sessions.folder("open"), sessions.folder("closed")
    (open_one / "x").write_bytes(b"x")
    sessions.close("closed")
    assert sessions.sweep(now=time.monotonic() + 30) == []
    assert sorted(sessions.sweep(now=time.monotonic() + 61)) == sorted([open_one, closed])
    assert not open_one.exists() and not closed.exists()


def test_a_server_that_stopped_leaves_no_folder_to_the_next(tmp_path):
    old = Sessions(tmp_path, keep=60)
    (old.folder("someone") / "capture.png").write_bytes(b"x")
    stale = time.time() - 3600
    os.utime(old.root, (stale, stale))
    new = Sessions(tmp_path, keep=60)
    new.folder("another")                 # the first use starts the sweep, after removing stale folders
    assert not old.root.exists() and new.root.exists()


@pytest.mark.parametrize("case,size,count,message", [
    ("a capture over its limit", teach_server.MAX_CAPTURE_BYTES + 1, 0, "captures up to 20 MB"),
    ("one capture too many", 10, teach_server.MAX_CAPTURES, f"{teach_server.MAX_CAPTURES} captures, the most"),
])
def test_captures_are_limited_per_session(teacher, tmp_path, case, size, count, message):
    folder = teacher.sessions.folder(session_id(MINE))
    (folder / "captures").mkdir()
    for k in range(count):
        (folder / "captures" / f"{k}.wav").write_bytes(b"")
    with open(tmp_path / "new.wav", "wb") as f:
        f.truncate(size)                  # sparse: nothing large is written
    with pytest.raises(InputError, match=message):
        teacher.capture(tmp_path / "new.wav", folder)
    assert len(list((folder / "captures").iterdir())) == count


def test_a_session_has_a_disk_quota_and_a_model_quota(teacher, tmp_path, monkeypatch):
    folder = teacher.sessions.folder(session_id(MINE))
    with open(folder / "big.bin", "wb") as f:
        f.truncate(teach_server.MAX_SESSION_BYTES + 1)
    with pytest.raises(InputError, match="it is full"):
        teacher.model_folder("text", "moods", folder)
    (folder / "big.bin").unlink()
    monkeypatch.setattr(teach_server, "MAX_SESSION_MODELS", 1)
    taught(teacher, moods_csv(tmp_path / "moods.csv"), "first")
    with pytest.raises(InputError, match="has taught 1 models"):
        taught(teacher, moods_csv(tmp_path / "moods.csv"), "second")


def test_each_session_names_its_models_apart(teacher, tmp_path):
    data = moods_csv(tmp_path / "moods.csv")
    mine, theirs = taught(teacher, data, "moods"), taught(teacher, data, "moods", THEIRS)
    assert mine["name"] != theirs["name"] and mine["name"][:6] == theirs["name"][:6] == "moods-"
    with pytest.raises(InputError, match="exists already"):
        taught(teacher, data, "moods")


def test_the_training_lane_refuses_beyond_its_waiting_room():
    lane = Lane("training runs", running=1, waiting=1)
    first, second = lane.enter(), lane.enter()
    assert (lane.ahead(first), lane.ahead(second)) == (0, 1)
    with pytest.raises(InputError, match="busy: 2 training runs are running or waiting"):
        lane.enter()
    lane.leave(first)
    assert lane.ahead(second) == 0


# ------------------------------------------------------------------------------------- a Space, launched

@pytest.fixture(scope="module")
def space(served_checkpoints, tmp_path_factory):
    """The app as a public Space runs it: SPACE_ID set, Teach on, its temporary folder a test's own."""
    tmp = tmp_path_factory.mktemp("space-tmp")
    with pytest.MonkeyPatch.context() as env:      # the app's process inherits them
        for key, value in {"SPACE_ID": "someone/triptych", "TRIPTYCH_TEACH": "1", "TMPDIR": str(tmp)}.items():
            env.setenv(key, value)
        with launch_app(served_checkpoints, "--host", "127.0.0.1", log_name="space.log") as url:
            url.tmp = tmp
            yield url


def test_a_taught_model_answers_its_visitor_alone_through_every_endpoint(space, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    mine, theirs = Client(space, verbose=False), Client(space, verbose=False)
    result = mine.predict("text", handle_file(str(moods_csv(tmp_path / "moods.csv"))), "moods", api_name="/teach")
    key = result["name"]
    assert len(key) == len("moods-") + 32 and set(result["labels"]) == set(WORDS)
    assert mine.predict("what a lovely day", key, api_name="/classify_text_json")["model"] == key
    assert key in mine.predict(key, api_name="/text_model_info")
    (tmp_path / "a.txt").write_text("what a lovely day\n")
    calls = {"/classify_text_json": ("hello", key), "/classify_text": ("hello", key), "/explain_text": ("hello", key),
             "/classify_text_batch": ([handle_file(str(tmp_path / "a.txt"))], key)}
    for api_name, args in calls.items():
        with pytest.raises(AppError, match=f"No text model named '{key}'") as info:
            theirs.predict(*args, api_name=api_name)
        assert "Traceback" not in str(info.value) and str(space.tmp) not in str(info.value)
    info = theirs.predict(key, api_name="/text_model_info")      # the panel says so, and nothing of the model
    assert f"No text model named '{key}'" in info and "happy" not in info
    session_folders = list(space.tmp.glob("triptych-teach/server-*/*"))
    assert len(session_folders) == 1 and session_id(SimpleNamespace(session_hash=mine.session_hash)) in str(
        session_folders[0])
    assert not (CHECKPOINTS / "text" / "moods").exists()


def test_share_keeps_visitors_apart_as_a_space_does(monkeypatch):
    import app

    monkeypatch.delenv("SPACE_ID", raising=False)
    assert app.private_sessions(app.get_args_parser().parse_args(["--share"])) is True
    assert app.private_sessions(app.get_args_parser().parse_args([])) is False


def test_the_download_of_a_taught_model_holds_its_onnx_graph(teacher, tmp_path):
    import zipfile

    result = taught(teacher, moods_csv(tmp_path / "moods.csv"), "moods")
    folder = dict(teacher.models["text"].predictors.items())[result["name"]].folder   # outside a request
    archive = teacher.export(folder, teacher.sessions.folder(session_id(MINE)))
    names = {Path(n).name for n in zipfile.ZipFile(archive).namelist()}
    assert {"model.safetensors", "config.json", "model.onnx", "README.md"} <= names and "resume.pt" not in names
