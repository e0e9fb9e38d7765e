"""Teach (demo/teach.py): projects of a few examples per class, trained through the engine into ordinary
checkpoints, with progress, cancel, limits and hostile uploads. Tiny generated data; the shipped
checkpoints are the transfer bases."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, image_png
from demo import teach
from demo.teach import Project, problems, project_from_upload
from training.tasks import InputError

pytestmark = pytest.mark.usefixtures("torch_one_thread")
CHECKPOINTS = REPO / "checkpoints"
WORDS = {"happy": ["what a wonderful sunny day", "i love this so much", "best party ever, so fun",
                   "we won the game today", "my friends surprised me with cake", "this is great news"],
         "grumpy": ["the train is late again", "i hate waiting in line", "my phone broke this morning",
                    "the food was cold and bland", "traffic ruined my whole day", "nothing works today"]}


def text_project() -> Project:
    return Project("text", {label: list(lines) for label, lines in WORDS.items()})


def image_files(folder: Path, colours: dict[str, int], per_class: int = 5) -> dict[str, list[str]]:
    out = {}
    for label, colour in colours.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        out[label] = []
        for k in range(per_class):
            path = folder / label / f"{k}.png"
            path.write_bytes(image_png(colour, size=24, seed=k))
            out[label].append(str(path))
    return out


def files_under(root: Path) -> set:
    return set(root.rglob("*"))


def test_problems_say_what_is_missing_before_training_can_start(tmp_path):
    assert problems(Project("text")) == ["Give at least two classes."]
    few = Project("text", {"happy": ["a", "b"], "bad/name": ["c"] * 5})
    found = " ".join(problems(few))
    assert "'happy' has 2 samples; each class needs at least 5" in found
    assert "'bad/name' is not usable" in found
    assert problems(text_project()) == []
    many = Project("text", {"a": ["x"] * 600, "b": ["y"] * 600})
    assert any(f"at most {teach.MAX_FILES}" in p for p in problems(many))


def test_a_text_project_trains_into_an_ordinary_checkpoint_with_the_text_recipe(tmp_path):
    steps, epochs = [], []
    from training.engine import Hooks

    hooks = Hooks(on_step=lambda *a: steps.append(a), on_epoch=epochs.append)
    result = teach.teach(text_project(), tmp_path / "moods", checkpoints=CHECKPOINTS, hooks=hooks)
    folder = tmp_path / "moods"
    assert result["name"] == "moods" and set(result["labels"]) == set(WORDS)
    assert 0.0 <= result["accuracy"] <= 1.0 and result["num_validation"] >= 2
    assert set(result["per_label"]) == set(WORDS) and len(result["confusion"]) == 2
    assert epochs and [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1)) and steps
    config = json.loads((folder / "config.json").read_text())
    # The command line's recipe (the pretrained encoder), not a copy of it for Teach.
    assert config["architecture"] == "minilm-gru" and config["recipe"]["name"].startswith("MiniLM-L6 encoder")
    assert config["pretrained"]["sha256"] == config["model"]["encoder_weights"]["sha256"]
    encoder = CHECKPOINTS / "text" / "emotion-minilm" / "tokenizer.json"
    assert (folder / "tokenizer.json").read_bytes() == encoder.read_bytes()      # the encoder's own vocabulary
    assert (folder / "README.md").is_file() and config["unsure_threshold"] is not None
    from demo.predictor import Predictor

    probs = Predictor.load(folder).predict("what a wonderful party")
    assert set(probs) == set(WORDS) and abs(sum(probs.values()) - 1) < 1e-5


def test_python_m_training_init_from_continues_a_taught_model(tmp_path):
    from training.cli import main

    teach.teach(text_project(), tmp_path / "moods", checkpoints=CHECKPOINTS)
    data = teach.write_dataset(text_project(), tmp_path)          # the same rows, the same carve
    summary = main(["text", "--dataset", str(data), "--init-from", str(tmp_path / "moods"), "--val-fraction",
                    str(teach.VAL_FRACTION), "--seed", "0", "--epochs", "1", "--quiet", "--workers", "0",
                    "--output", str(tmp_path / "more")])
    assert summary["best"]["epoch"] == 1
    assert json.loads((tmp_path / "more" / "config.json").read_text())["init_from"]["checkpoint"] == str(tmp_path / "moods")


def test_cancel_stops_the_run_and_leaves_nothing(tmp_path):
    from training.engine import Cancelled, Hooks

    with pytest.raises(Cancelled):
        teach.teach(text_project(), tmp_path / "moods", checkpoints=CHECKPOINTS, hooks=Hooks(should_stop=lambda: True))
    assert not (tmp_path / "moods").exists()


def test_a_name_in_use_is_refused(tmp_path):
    (tmp_path / "moods").mkdir()
    with pytest.raises(InputError, match="exists already"):
        teach.teach(text_project(), tmp_path / "moods", checkpoints=CHECKPOINTS)


def test_an_image_project_is_a_linear_probe_on_pretrained_features(tmp_path):
    samples = image_files(tmp_path / "photos", {"red": 0, "blue": 2})
    result = teach.teach(Project("image", samples), tmp_path / "colours", checkpoints=CHECKPOINTS)
    config = json.loads((tmp_path / "colours" / "config.json").read_text())
    assert config["model"]["architecture"] == "efficientnet_lite0" and config["pretrained"]["license"]
    assert config["train_args"]["freeze_backbone"] is True
    assert result["accuracy"] == 1.0          # red against blue, on ImageNet features


def test_a_sound_project_cuts_its_noise_recording_into_a_silence_class(tmp_path):
    samples = {}
    for word, hz in (("low", 300), ("high", 2000)):
        samples[word] = []
        for k in range(5):
            path = tmp_path / f"{word}-{k}.wav"
            tone(path, hz + 20 * k)
            samples[word].append(str(path))
    noise = tmp_path / "room.wav"
    noise_wav(noise, seconds=6)
    data = teach.write_dataset(Project("speech", samples, noise=[str(noise)]), tmp_path / "ds")
    assert len(list((data / "_silence_").glob("*.wav"))) == 6
    result = teach.teach(Project("speech", samples, noise=[str(noise)]), tmp_path / "tones", checkpoints=CHECKPOINTS)
    assert set(result["labels"]) == {"low", "high", "_silence_"}
    config = json.loads((tmp_path / "tones" / "config.json").read_text())
    assert config["transferred_from"]["checkpoint"].endswith("speech_commands")


def tone(path: Path, hz: float, seconds: float = 1.0, rate: int = 16000) -> None:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype("float32"), rate)


def noise_wav(path: Path, seconds: float, rate: int = 16000) -> None:
    import numpy as np
    import soundfile as sf

    sf.write(path, np.random.default_rng(0).normal(0, 0.05, int(seconds * rate)).astype("float32"), rate)


# ------------------------------------------------------------------------------------------- uploads

def write_zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            if data == "symlink":
                info = zipfile.ZipInfo(name)
                info.create_system = 3
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                z.writestr(info, "/etc/passwd")
            else:
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data)
    return path


def test_a_zip_of_class_folders_is_a_project_extracted_inside_its_folder(tmp_path):
    members = {f"project/{label}/{k}.png": image_png(c, seed=k) for label, c in (("red", 0), ("blue", 2))
               for k in range(5)}
    members.update({"project/__MACOSX/red/._0.png": b"junk", "project/red/.DS_Store": b"junk",
                    "project/notes.txt": b"not an image"})
    path = write_zip(tmp_path / "colours.zip", members)
    before = files_under(tmp_path)
    counted = project_from_upload("image", path, None)          # checked and counted, nothing extracted
    assert counted.counts() == {"red": 5, "blue": 5} and files_under(tmp_path) == before
    project = project_from_upload("image", path, tmp_path / "session" / "upload")
    assert project.counts() == {"red": 5, "blue": 5}
    assert all(Path(f).is_relative_to(tmp_path / "session" / "upload") for files in project.samples.values()
               for f in files)


HOSTILE = {
    "traversal": ({"red/0.png": b"x", "../evil.png": b"x"}, "points outside the archive"),
    "absolute": ({"/tmp/evil.png": b"x"}, "points outside the archive"),
    "symlink": ({"red/0.png": b"x", "red/link.png": "symlink"}, "symbolic link"),
    "bomb": ({"red/bomb.png": bytes(50 * 2**20)}, "zip bomb"),
    "flat": ({"0.png": b"x", "1.png": b"x"}, "a folder named after the class"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_zips_are_refused_and_nothing_is_written(tmp_path, case):
    members, message = HOSTILE[case]
    path = write_zip(tmp_path / f"{case}.zip", members)
    before = files_under(tmp_path)
    with pytest.raises(InputError, match=message):
        project_from_upload("image", path, tmp_path / "session")
    assert files_under(tmp_path) == before


def test_too_many_files_in_a_zip_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(teach, "MAX_FILES", 4)
    path = write_zip(tmp_path / "many.zip", {f"red/{k}.png": b"x" for k in range(3)} |
                     {f"blue/{k}.png": b"x" for k in range(3)})
    with pytest.raises(InputError, match="at most 4 files"):
        project_from_upload("image", path, tmp_path / "session")
    assert not (tmp_path / "session").exists()


def test_a_csv_project_needs_a_text_and_a_label_column(tmp_path):
    good = tmp_path / "moods.csv"
    good.write_text("\ufefftext,label\n" + "".join(f'"{line}",{label}\n' for label, lines in WORDS.items()
                                                    for line in lines), encoding="utf-8")
    project = project_from_upload("text", good, tmp_path)
    assert project.counts() == {"happy": 6, "grumpy": 6} and problems(project) == []
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,mood\nhello,x\n", encoding="utf-8")
    with pytest.raises(InputError, match="a label column"):
        project_from_upload("text", bad, tmp_path)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        project_from_upload("text", latin, tmp_path)
    with pytest.raises(InputError, match="zip"):
        project_from_upload("image", good, tmp_path)
