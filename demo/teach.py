"""Teach: a classifier of your own from a few examples per class, trained in seconds through the engine.

A `Project` is a task and its classes' samples (files for images and sounds, texts for text), plus a
sound project's background-noise recordings. `teach(project, output)` checks what decoding it would cost,
writes it as a dataset the task reads (a folder per class, or text,label rows as JSON lines, which keep
"None", "NA" and "null" as the words they are), builds the run's settings as the command line does, with
the task's default recipe (`Task.recipe`, training/tasks/base.py), and trains with `training.engine.run`,
reporting each step and epoch through its `Hooks`. The result is an ordinary checkpoint folder: the demo
serves it, `python -m training <task> --init-from` continues it, `python -m training push` uploads it.

Nothing a visitor uploads is trusted. Uploads are read through demo/uploads.py (counted while they are
read); a zip is checked member by member before anything is extracted (no absolute or `..` paths, no
links, no bombs, at most MAX_FILES files and MAX_BYTES in all), and extracted only inside the folder it is
given; a CSV must be UTF-8 with a text and a label column. Class names must differ in more than case.
Preparing a run (extracting, checking, writing) stops when `stop()` says so or after PREPARE_SECONDS.
Sessions, jobs and the /teach endpoint are demo/teach_server.py's.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from demo.uploads import (Budget, check_member, csv_records, megabytes, member_bytes, read_text, skipped,
                          zip_directory)
from training.tasks import InputError, get_task

MAX_FILES = 1_000                 # samples in one project, files and lines alike
MAX_BYTES = 100 * 2**20           # of sample files in one project
MAX_SECONDS = 300                 # of training: the run stops after the epoch that passes it (--time-limit)
PREPARE_SECONDS = 120             # extracting, checking and writing a project's samples, before training
# What the engine's decoder may be given to decode, summed from the samples' headers before training:
# 1,000 webcam snapshots of a megapixel, or 80 phone photos of 12; 1,000 one-second clips and half an hour
# of noise recordings. Measured on a busy 2-core machine, decoding and resizing a 12-megapixel photo took
# 29 ms a megapixel (JPEG) to 57 (PNG), so 30 to 60 s for the whole budget; a second of audio 1.3 (MP3) to
# 3.7 ms (WAV), 7 s for the whole budget.
MAX_PROJECT_PIXELS = 1_000_000_000
MAX_PROJECT_AUDIO_SECONDS = 1_800
VAL_FRACTION = 0.2                # held out per class (stratified) for the scores shown after training
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}")


class Stopped(InputError):
    """Preparing a project stopped: cancelled, or past PREPARE_SECONDS."""


@dataclass
class Project:
    """What a visitor has given so far: class name -> samples (file paths, or texts), and noise files.
    `clashes` are class names given twice (ignoring case), whose samples were not merged."""
    task: str
    samples: dict[str, list] = field(default_factory=dict)
    noise: list = field(default_factory=list)
    clashes: list[str] = field(default_factory=list)

    @property
    def recipe(self):
        return get_task(self.task).teach

    def counts(self) -> dict[str, int]:
        return {name: len(items) for name, items in self.samples.items()}

    def add(self, name: str, samples: list) -> None:
        """Add a class; a name already given (ignoring case) is a clash, said by `problems`."""
        same = [known for known in self.samples if known.casefold() == name.casefold()]
        if same:
            self.clashes.append(f"'{same[0]}' and '{name}'" if same[0] != name else f"'{name}' twice")
            self.samples[same[0]] = [*self.samples[same[0]], *samples]
        else:
            self.samples[name] = list(samples)


def check_name(name: str, what: str = "A class name") -> str:
    name = (name or "").strip()
    if not NAME_RE.fullmatch(name) or name in (".", ".."):
        raise InputError(f"{what} '{name}' is not usable: use 1 to 63 letters, digits, spaces, '_', '-' or '.', "
                         "starting with a letter or digit.")
    return name


def problems(project: Project) -> list[str]:
    """What is missing before training can start, in words; empty when it can start."""
    recipe = project.recipe
    if recipe is None:
        return [f"The {project.task} task cannot be taught here."]
    out = [f"Two classes have one name ({clash}; names differ in more than case): rename one, or put their "
           "samples in one class." for clash in project.clashes]
    if len(project.samples) < 2:
        out.append("Give at least two classes.")
    for name, n in project.counts().items():
        try:
            check_name(name)
        except InputError as e:
            out.append(str(e))
        if n < recipe.min_per_class:
            out.append(f"'{name}' has {n} sample{'s' * (n != 1)}; each class needs at least {recipe.min_per_class}.")
    files = [f for items in project.samples.values() for f in items] + list(project.noise)
    if len(files) > MAX_FILES:
        out.append(f"The project has {len(files)} samples; at most {MAX_FILES} can be taught at once.")
    elif recipe.layout == "folder":
        size = sum(Path(f).stat().st_size for f in files if Path(str(f)).is_file())
        if size > MAX_BYTES:
            out.append(f"The samples take {megabytes(size)}; at most {megabytes(MAX_BYTES)} can be taught at once.")
    return out


# ---------------------------------------------------------------------------------------- training

class Deadline:
    """`stop()` (a cancel) or PREPARE_SECONDS passed: `check` raises Stopped."""

    def __init__(self, stop=None, seconds: float = PREPARE_SECONDS):
        self.stop, self.end = stop, time.monotonic() + seconds

    def check(self) -> None:
        if self.stop is not None and self.stop():
            raise Stopped("Cancelled: nothing was saved.")
        if time.monotonic() > self.end:
            raise Stopped(f"Preparing the samples took over {PREPARE_SECONDS} s; please give fewer or smaller ones.")


def decode_cost(project: Project, deadline: Deadline) -> None:
    """Refuse a project whose samples would cost the decoder more than MAX_PROJECT_PIXELS or
    MAX_PROJECT_AUDIO_SECONDS, from their headers (a sample that cannot be read is left to the decoder,
    which says why)."""
    import soundfile as sf
    from PIL import Image

    from training.tasks.image.decode import IMAGE_FORMATS
    from training.tasks.speech.audio import MAX_READ_SECONDS, container

    if project.recipe.layout != "folder":
        return
    pixels = seconds = 0.0
    for path in [f for items in project.samples.values() for f in items] + list(project.noise):
        deadline.check()
        with open(path, "rb") as f:
            head = f.read(12)
        try:
            if container(head):
                seconds += min(sf.info(str(path)).duration, MAX_READ_SECONDS)
            else:
                with Image.open(path, formats=list(IMAGE_FORMATS)) as im:
                    pixels += im.width * im.height
        except Exception:   # noqa: BLE001 (the engine's decoder gives this file's reason, in words)
            continue
    if pixels > MAX_PROJECT_PIXELS:
        raise InputError(f"The images hold {pixels / 1e6:,.0f} megapixels in all; at most "
                         f"{MAX_PROJECT_PIXELS // 1_000_000:,} can be taught at once. Smaller photos teach as well "
                         "(the model sees 160 pixels).")
    if seconds > MAX_PROJECT_AUDIO_SECONDS:
        raise InputError(f"The recordings last {seconds / 60:.0f} minutes in all; at most "
                         f"{MAX_PROJECT_AUDIO_SECONDS // 60} can be taught at once.")


def write_dataset(project: Project, folder: Path, deadline: Deadline | None = None) -> Path:
    """The project as a dataset its task reads: class folders of files, or text,label rows as JSON lines."""
    deadline = deadline or Deadline()
    recipe, task = project.recipe, get_task(project.task)
    if recipe.layout == "csv":
        path = folder / "data.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for name, texts in project.samples.items():
                f.writelines(json.dumps({task.input_columns[0]: text, "label": name}) + "\n" for text in texts)
        return path
    root = folder / "data"
    for name, files in project.samples.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k, path in enumerate(files):
            deadline.check()
            shutil.copyfile(path, root / name / f"{k:04d}{Path(path).suffix.lower()}")
    if recipe.noise_label and project.noise:
        (root / recipe.noise_label).mkdir(parents=True, exist_ok=True)
        for k, path in enumerate(project.noise):
            deadline.check()
            task.split_recording(path, root / recipe.noise_label, f"noise-{k}")
    return root


def run_settings_for(project: Project, data: Path, output: Path, checkpoints, time_limit: float):
    """The run's typed settings: `python -m training <task> --dataset <data>` with the task's default recipe
    (the command line's: its rules for a handful of samples per class are the recipe's), written to `output`,
    starting from the shipped models under `checkpoints` where the recipe does."""
    from training.parser import settings_from_argv

    argv = [project.task, "--dataset", str(data), "--output", str(output), "--val-fraction", str(VAL_FRACTION),
            "--seed", "0", "--workers", "0", "--no-cache", "--quiet", "--time-limit", str(time_limit),
            "--checkpoints", str(checkpoints)]
    return settings_from_argv(argv)[1]


def teach(project: Project, output, *, checkpoints="checkpoints", hooks=None, time_limit: float = MAX_SECONDS,
          stop=None) -> dict:
    """Train `project` into the checkpoint folder `output`; returns `result`. On any failure or a
    cancel (`stop()` while preparing, training.engine.Cancelled while training) nothing is left at
    `output`, nor of the dataset written for the run."""
    from training.engine import run

    found = problems(project)
    if found:
        raise InputError(" ".join(found))
    output = Path(output)
    if output.exists():
        raise InputError(f"A model named '{output.name}' exists already; choose another name.")
    t0 = time.perf_counter()
    deadline = Deadline(stop)
    try:
        decode_cost(project, deadline)
        with tempfile.TemporaryDirectory(prefix="teach-") as tmp:
            data = write_dataset(project, Path(tmp), deadline)
            summary = run(get_task(project.task), run_settings_for(project, data, output, checkpoints, time_limit),
                          hooks=hooks)
    except BaseException:
        shutil.rmtree(output, ignore_errors=True)
        raise
    return result(summary, output, time.perf_counter() - t0)


def result(summary: dict, output: Path, seconds: float) -> dict:
    """What the Teach tab and the /teach endpoint report: the model's name and its validation scores."""
    best = summary["best"]
    labels = json.loads((output / "config.json").read_text(encoding="utf-8"))["labels"]
    return {"name": output.name, "folder": str(output), "accuracy": round(best["accuracy"], 4),
            "macro_f1": round(best["macro_f1"], 4), "labels": labels,
            "per_label": best.get("per_label", {}), "confusion": summary.get("confusion"),
            "epochs": len(summary.get("history", [])), "best_epoch": best.get("epoch"),
            "num_validation": best.get("num_examples"), "seconds": round(seconds, 1)}


# ---------------------------------------------------------------------------------------- uploads

def project_budget() -> Budget:
    """What one project upload may hold: MAX_FILES samples, MAX_BYTES of them, a header line per sample."""
    return Budget("sample", files=1, items=MAX_FILES, bytes=MAX_BYTES, lines=MAX_FILES + 1,
                  cells=(MAX_FILES + 1) * 10)


def project_from_upload(task: str, path, folder, *, stop=None) -> Project:
    """A project from one uploaded file: a zip with a folder per class (images or clips), or a CSV with a
    text and a label column. Zip members are extracted into `folder` only, after every check; with `folder`
    None nothing is extracted, and a zip's samples are its member names (to count and check them)."""
    path = Path(path)
    recipe = get_task(task).teach
    if recipe is None:
        raise InputError(f"The {task} task cannot be taught here.")
    if recipe.layout == "csv":
        if path.suffix.lower() != ".csv":
            raise InputError("Upload a CSV with a text column and a label column.")
        return project_from_csv(task, path)
    if path.suffix.lower() != ".zip":
        raise InputError("Upload a zip with one folder of files per class (the folder's name is the class).")
    return project_from_zip(task, path, None if folder is None else Path(folder), Deadline(stop))


def project_from_csv(task: str, path: Path) -> Project:
    text, budget = read_text(path), project_budget()
    records = csv_records(path.name, text, budget)
    header = next(records, (0, []))[1]
    columns = {c.strip().lower(): j for j, c in enumerate(header) if c.strip()}
    wanted = get_task(task).input_columns
    text_col = next((columns[c] for c in wanted if c in columns), None)
    if text_col is None or "label" not in columns:
        raise InputError(f"{path.name}: the CSV needs a text column ({', '.join(wanted)}) and a label column; "
                         f"it has {', '.join(columns) or 'none'}.")
    by_label: dict[str, list[str]] = {}
    for _, row in records:
        value, label = (cell(row, text_col), cell(row, columns["label"]))
        if value and label:
            budget.spend("items", 1, path.name)
            by_label.setdefault(check_name(label, "A label"), []).append(value)
    project = Project(task)
    for label, values in by_label.items():
        project.add(label, values)
    return project


def cell(row: list[str], j: int) -> str:
    return row[j].strip() if j < len(row) else ""


def zip_plan(path: Path, extensions, noise_label: str | None = None) -> list[tuple[zipfile.ZipInfo, str, str]]:
    """(member, class, file name) for every sample in the zip, every member checked first; nothing read.
    A folder named `noise_label` holds background-noise recordings."""
    infos = zip_directory(path, project_budget())
    for info in infos:
        check_member(path.name, info)
    members = [info for info in infos if not skipped(info) and Path(info.filename).suffix.lower() in extensions]
    parts = [PurePosixPath(info.filename.replace("\\", "/")).parts for info in members]
    if parts and all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]          # one folder around the class folders: look inside it
    if not members or any(len(p) != 2 for p in parts):
        raise InputError(f"{path.name}: put each class's files in a folder named after the class (class/file), "
                         f"and nothing deeper; files read: {', '.join(extensions)}.")
    if len(members) > MAX_FILES or sum(i.file_size for i in members) > MAX_BYTES:
        raise InputError(f"{path.name} holds {len(members)} files, {megabytes(sum(i.file_size for i in members))}; "
                         f"at most {MAX_FILES} files and {megabytes(MAX_BYTES)} can be taught at once.")
    return [(info, p[0] if p[0] == noise_label else check_name(p[0]), f"{k:04d}{Path(p[1]).suffix.lower()}")
            for k, (info, p) in enumerate(zip(members, parts))]


def project_from_zip(task: str, path: Path, folder: Path | None, deadline: Deadline) -> Project:
    recipe = get_task(task).teach
    plan = zip_plan(path, recipe.extensions, recipe.noise_label)
    by_class: dict[str, list] = {}
    noise = []
    with zipfile.ZipFile(path) as archive:
        for info, name, file_name in plan:
            deadline.check()
            sample = info.filename if folder is None else extract(archive, info, folder / name / file_name, path)
            (noise if recipe.noise_label and name == recipe.noise_label else by_class.setdefault(name, [])).append(sample)
    project = Project(task, noise=noise)
    for name, samples in by_class.items():
        project.add(name, samples)
    return project


def extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, path: Path) -> str:
    """One checked member written to `target`, reading no more than its declared size."""
    data = member_bytes(archive, info, f"{path.name}: {info.filename}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return str(target)
