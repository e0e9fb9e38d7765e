"""The Teach tab: name some classes, give each a few examples (uploads, webcam, microphone, or lines of
text), train a classifier of your own in seconds, try it, download it. Components and wiring only: the
project, its checks and the training run are demo/teach.py, which trains through training.engine.

Locally a taught model is saved under checkpoints/<task>/<name> and joins that task's model picker at once.
With `sessions` (a public Space) each visitor's samples and models stay in a session folder of their own,
their models are listed for them alone under a name no one else can guess, and the folder is deleted an
hour after the session ends.
"""

from __future__ import annotations

import fnmatch
import json
import queue
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from demo.predictor import ModelSet, Predictor
from demo.tabs.common import user_errors
from demo.teach import MAX_SECONDS, VAL_FRACTION, Project, check_name, problems, project_from_upload, teach
from training.tasks import InputError, get_task

SLOTS = 4                       # class slots shown; a project with more classes comes as one zip or CSV
KEEP_SECONDS = 3600             # a session's folder lives this long after the session ends
ROOT = Path(tempfile.gettempdir()) / "triptych-teach"


@dataclass
class Slot:
    """One class of the project being taught: its name and its samples of every kind."""
    name: gr.Textbox
    files: gr.File
    camera: gr.Image
    mic: gr.Audio
    capture_box: gr.Accordion    # the camera or microphone and its Add button
    lines: gr.Textbox
    captured: gr.State
    add: gr.Button

    def inputs(self) -> list:
        return [self.name, self.files, self.lines, self.captured]


@dataclass
class Context:
    """What the tab's functions share: the app's models and pickers, where models go, and the mode."""
    models: dict[str, ModelSet]
    pickers: dict
    checkpoints: Path
    sessions: bool

    @property
    def modalities(self) -> dict[str, str]:
        """What the Teach tab offers: each served task that can be taught, by its recipe's title."""
        return {get_task(t).teach.title: t for t in self.pickers if get_task(t).teach is not None}


def build(models: dict[str, ModelSet], pickers: dict, checkpoints, sessions: bool = False) -> None:
    ctx = Context(models, pickers, Path(checkpoints), sessions)
    gr.Markdown("Teach a classifier of your own: choose what it learns from, name two or more classes, give each "
                "some examples, and train. It learns in seconds from a model that already knows images, speech "
                f"or English, and the result is a normal checkpoint{'' if sessions else ' under checkpoints/'}.")
    session = gr.State(None, time_to_live=None, delete_callback=forget_session(ctx))
    choices = list(ctx.modalities)
    with gr.Row():
        modality = gr.Radio(choices, value=choices[0], label="Teach from")
        name = gr.Textbox(value=f"my-{choices[0].lower()}s", label="Model name", max_lines=1)
    slots = [class_slot(k, recipe_of(ctx, choices[0])) for k in range(SLOTS)]
    noise = gr.Audio(sources=["microphone", "upload"], type="filepath", visible=recipe_of(ctx, choices[0]).noise_label is not None,
                     label="Background noise: about 20 s of the room with nobody speaking")
    whole = gr.File(label="Or upload the whole project: a zip with a folder per class, or a CSV (text, label)",
                    file_types=[".zip", ".csv"], elem_id="teach-project")
    status = gr.Markdown(elem_id="teach-status")
    with gr.Row():
        train_button = gr.Button("Train", variant="primary")
        cancel = gr.Button("Cancel", variant="stop")
    curve = gr.LinePlot(x="epoch", y="value", color="series", label="Training: loss and validation accuracy",
                        y_lim=[0, None], height=240)
    results = result_panel()
    inputs = [modality, name, noise, whole, session, *[c for s in slots for c in s.inputs()]]
    wire_slots(ctx, slots, modality, session, inputs, status, noise, name)
    picked = list(ctx.pickers.values())
    running = train_button.click(train_fn(ctx), inputs, [status, curve, *results.outputs(), session, *picked],
                                 concurrency_limit=1, concurrency_id="teach", api_visibility="private")
    cancel.click(lambda: "Cancelled: the run stopped, and nothing of it was saved.", None, status, cancels=[running],
                 queue=False, api_visibility="private")
    results.wire(ctx)
    teach_endpoint(ctx)


def recipe_of(ctx: Context, modality: str):
    return get_task(ctx.modalities[modality]).teach


def visibility(recipe) -> list:
    """Which of a slot's sample inputs a project of this recipe uses: camera, mic, capture box, lines, files."""
    return [recipe.capture == "webcam", recipe.capture == "microphone", recipe.capture is not None,
            recipe.layout == "csv", recipe.layout == "folder"]


def class_slot(k: int, recipe) -> Slot:
    camera_on, mic_on, add_on, lines_on, files_on = visibility(recipe)
    with gr.Group():
        with gr.Row():
            name = gr.Textbox(label=f"Class {k + 1}", placeholder="its name, e.g. cat", max_lines=1, scale=1)
            files = gr.File(file_count="multiple", label=f"Class {k + 1}: upload examples", scale=2, height=120,
                            visible=files_on, elem_id=f"teach-files-{k + 1}")
        with gr.Accordion(f"Class {k + 1}: capture examples one by one", open=False, visible=add_on) as capture_box:
            camera = gr.Image(sources=["webcam"], type="filepath", label=f"Class {k + 1}: webcam snapshot",
                              height=200, visible=camera_on, elem_id=f"teach-camera-{k + 1}")
            mic = gr.Audio(sources=["microphone"], type="filepath", label=f"Class {k + 1}: record", visible=mic_on,
                           elem_id=f"teach-mic-{k + 1}")
            add = gr.Button(f"Add to class {k + 1}", size="sm", elem_id=f"teach-add-{k + 1}")
        lines = gr.Textbox(label=f"Class {k + 1}: examples, one per line", lines=4, visible=lines_on)
    return Slot(name, files, camera, mic, capture_box, lines, gr.State([]), add)


def wire_slots(ctx: Context, slots: list[Slot], modality, session, inputs: list, status, noise, name) -> None:
    """Visibility per modality, captures added to their class, and the status after every change."""
    def show(choice):
        recipe = recipe_of(ctx, choice)
        per_slot = [gr.update(visible=v) for v in visibility(recipe)]
        return [*per_slot * len(slots), gr.update(visible=recipe.noise_label is not None), f"my-{choice.lower()}s"]
    targets = [c for s in slots for c in (s.camera, s.mic, s.capture_box, s.lines, s.files)]
    modality.change(show, modality, [*targets, noise, name], queue=False, api_visibility="private")
    for slot in slots:
        slot.add.click(capture, [slot.camera, slot.mic, slot.captured, session], [slot.captured, slot.camera, slot.mic,
                                                                                    session], api_visibility="private")
    for component in (c for c in inputs if c is not session):   # the session folder is not a sample
        component.change(lambda *v: describe(ctx, *v), inputs, status, queue=False, api_visibility="private",
                         show_progress="hidden")


@user_errors
def capture(photo, recording, captured, session):
    """Keep a webcam snapshot or a recording in the session's folder, as one more example of its class."""
    source = photo or recording
    if source is None:
        raise InputError("Take a snapshot or record a clip first, then add it.")
    folder = session_folder(session) / "captures"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{secrets.token_hex(6)}{Path(source).suffix.lower() or '.png'}"
    shutil.copyfile(source, target)
    return [*captured, str(target)], None, None, str(session_folder(session))


def session_folder(session) -> Path:
    """The visitor's own folder (created on first use), kept in their session's State."""
    if session:
        return Path(session)
    ROOT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="session-", dir=ROOT))


def gather(ctx: Context, folder: Path | None, modality, name, noise, whole, session, *slot_values) -> Project:
    """The project the inputs describe; an uploaded zip is extracted under `folder` (None: only read)."""
    task, recipe = ctx.modalities[modality], recipe_of(ctx, modality)
    if whole is not None:
        return project_from_upload(task, whole, None if folder is None else folder / "upload" / secrets.token_hex(4))
    project = Project(task, noise=[noise] if noise and recipe.noise_label else [])
    for k in range(0, len(slot_values), 4):
        label, files, lines, captured = slot_values[k:k + 4]
        samples = ([line.strip() for line in (lines or "").splitlines() if line.strip()] if recipe.layout == "csv"
                   else [*(files or []), *(captured or [])])
        if (label or "").strip() or samples:
            project.samples[(label or "").strip() or f"class {k // 4 + 1}"] = samples
    return project


def describe(ctx: Context, *values) -> str:
    """How many samples each class has, and what is missing before training can start."""
    try:
        project = gather(ctx, None, *values)     # an uploaded zip is checked and counted, not extracted
    except InputError as e:
        return f"> {e}"
    counts = ", ".join(f"**{name}**: {n}" for name, n in project.counts().items()) or "no classes yet"
    missing = problems(project)
    noise = f"; background noise: {len(project.noise)} recording(s)" if project.recipe.noise_label else ""
    return f"{counts}{noise}.\n\n" + ("\n".join(f"- {p}" for p in missing) if missing else "Ready to train.")


# ------------------------------------------------------------------------------------------ training

class Job:
    """One teach run in a worker thread: its progress as events, its stop flag, its outcome."""

    def __init__(self, project: Project, output: Path, checkpoints: Path):
        from training.engine import Hooks

        self.project, self.output, self.checkpoints = project, output, checkpoints
        self.events: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.result, self.error = None, None
        self.hooks = Hooks(on_step=lambda e, s, n, loss: self.events.put(("step", e, s, n, loss)),
                           on_epoch=lambda row: self.events.put(("epoch", row)), should_stop=self.stop.is_set)

    def run(self) -> None:
        # With the app's own torch thread count (cores / concurrent requests): measured on 2 busy cores, a
        # teach run on both cores was 3 to 100 times slower than on one, and so were the app's requests.
        try:
            self.result = teach(self.project, self.output, checkpoints=self.checkpoints, hooks=self.hooks,
                                time_limit=MAX_SECONDS)
        except BaseException as e:   # reported by the generator that waits for it
            self.error = e


def curve_frame(rows: list[dict]):
    """The loss and accuracy curve so far; no update until the first epoch is in (a plot first given an empty
    frame draws no lines afterwards)."""
    import pandas as pd

    if not rows:
        return gr.skip()
    points = [(r["epoch"], "train loss", r["train_loss"]) for r in rows]
    points += [(r["epoch"], "validation accuracy", r["val_accuracy"]) for r in rows]
    frame = pd.DataFrame(points, columns=["epoch", "series", "value"])
    return frame.astype({"epoch": "int64", "series": "str", "value": "float64"})


def train_fn(ctx: Context):
    def train_model(modality, name, *rest, progress=gr.Progress()):
        """Train the project; yields the status, the curve, and at the end the results."""
        session = rest[2]
        folder = session_folder(session)
        try:
            project = gather(ctx, folder, modality, name, *rest)
            output = model_folder(ctx, project.task, check_name(name, "The model name"), folder)
        except InputError as e:
            raise gr.Error(str(e), print_exception=False) from None
        job = Job(project, output, ctx.checkpoints)
        worker = threading.Thread(target=job.run, daemon=True)
        worker.start()
        rows: list[dict] = []
        try:
            while worker.is_alive() or not job.events.empty():
                yield progress_update(ctx, job, rows, progress, folder)
                time.sleep(0.3)
        finally:
            job.stop.set()      # a cancel closes this generator: the run stops at its next step
            worker.join()
        yield finished(ctx, job, rows, folder)
    return train_model


def progress_update(ctx: Context, job: Job, rows: list, progress, folder) -> tuple:
    text = "Training..."
    while not job.events.empty():
        event = job.events.get()
        if event[0] == "epoch":
            rows.append(event[1])
            text = f"Epoch {event[1]['epoch']}: validation accuracy {event[1]['val_accuracy']:.0%}"
        else:
            _, epoch, step, steps, loss = event
            progress((step + 1, steps), desc=f"epoch {epoch + 1}, loss {loss:.3f}")
    return (text, curve_frame(rows), *[gr.skip()] * RESULT_OUTPUTS, str(folder), *[gr.skip()] * len(ctx.pickers))


def model_folder(ctx: Context, task: str, name: str, session: Path) -> Path:
    """Where a taught model is saved: checkpoints/<task>/<name> locally, the session's folder on a Space."""
    root = session / "models" / task if ctx.sessions else ctx.checkpoints / task
    if name in ctx.models[task].predictors or (root / name).exists():
        raise InputError(f"A {task} model named '{name}' exists already; choose another name.")
    return root / name


def finished(ctx: Context, job: Job, rows: list, folder: Path) -> tuple:
    """The results once the run is over: scores, confusion matrix, download, the try-it panel; or why not."""
    from training.engine import Cancelled
    from training.records import TrainingError

    if isinstance(job.error, Cancelled):
        return ("Cancelled: nothing was saved.", curve_frame(rows), *cleared_results(), str(folder),
                *[gr.skip()] * len(ctx.pickers))
    if isinstance(job.error, (InputError, TrainingError, ValueError)):
        raise gr.Error(f"Training failed: {job.error}", print_exception=False)
    if job.error is not None:
        raise job.error
    result = job.result
    key = register(ctx, job.project.task, Path(result["folder"]))
    result["name"] = key
    text = (f"**{key}**: validation accuracy **{result['accuracy']:.0%}** on {result['num_validation']} held-out "
            f"examples ({round(100 * VAL_FRACTION)}% of each class), {result['epochs']} epochs in {result['seconds']:.0f} s. "
            f"It is in the {job.project.task} tab's model picker now. So few held-out examples flatter it: expect "
            "less on inputs unlike yours (other lighting, voices, wording), and give each class more varied "
            "examples to do better.")
    pickers = [gr.update(choices=session_models(ctx, task, str(folder))) if task == job.project.task else gr.skip()
               for task in ctx.pickers]
    return (text, curve_frame(rows), *result_values(ctx, job.project.task, result, folder), str(folder), *pickers)


RESULT_OUTPUTS = 8   # Results.outputs()


def register(ctx: Context, task: str, folder: Path) -> str:
    """Load the taught checkpoint into the app: it joins its task's models at once. On a Space it gets a
    name no other visitor can guess, and is listed for its session only."""
    models = ctx.models[task]
    key = f"{folder.name}-{secrets.token_hex(4)}" if ctx.sessions else folder.name
    models.predictors[key] = Predictor.load(folder, models.device)
    if ctx.sessions:
        models.private.add(key)
    return key


def session_models(ctx: Context, task: str, session) -> list[str]:
    """The model picker's choices for one visitor: the shared models and, on a Space, their own."""
    models = ctx.models[task]
    own = [k for k in models.private if session and Path(session) in models.predictors[k].folder.parents]
    return models.names + sorted(own)


@dataclass
class Results:
    summary: gr.Markdown
    per_label: gr.Dataframe
    confusion: gr.Image
    download: gr.File
    taught: gr.State
    try_image: gr.Image
    try_audio: gr.Audio
    try_text: gr.Textbox
    try_button: gr.Button
    try_label: gr.Label

    def outputs(self) -> list:
        return [self.summary, self.per_label, self.confusion, self.download, self.taught, self.try_image,
                self.try_audio, self.try_text]

    def wire(self, ctx: Context) -> None:
        def try_it(taught, image, audio, text):
            if not taught:
                raise InputError("Train a model first.")
            predictor = ctx.models[taught["task"]].get(taught["key"])
            recipe = get_task(taught["task"]).teach
            raw = {"webcam": image, "microphone": audio}.get(recipe.capture, text)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                raise InputError("Give it something to classify first.")
            return predictor.predict(raw)
        self.try_button.click(user_errors(try_it), [self.taught, self.try_image, self.try_audio, self.try_text],
                              self.try_label, api_visibility="private")


def cleared_results() -> tuple:
    hidden = gr.update(visible=False)
    return ("", None, None, None, None, hidden, hidden, hidden)


def result_panel() -> Results:
    summary = gr.Markdown()
    with gr.Row():
        per_label = gr.Dataframe(label="Validation scores per class", interactive=False)
        confusion = gr.Image(label="Validation confusion matrix", type="filepath", interactive=False,
                             alt_text="Confusion matrix of the taught model on its held-out examples")
    download = gr.File(label="Download the model (a checkpoint folder, zipped)", interactive=False)
    taught = gr.State(None)
    with gr.Group():
        gr.Markdown("**Try it**")
        with gr.Row():
            try_image = gr.Image(sources=["upload", "webcam", "clipboard"], type="filepath", label="Try an image",
                                 visible=False, height=220, elem_id="teach-try-image")
            try_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Try a sound", visible=False,
                                 elem_id="teach-try-audio")
            try_text = gr.Textbox(label="Try a sentence", visible=False, elem_id="teach-try-text")
            try_label = gr.Label(num_top_classes=5, label="The taught model says", elem_id="teach-try-label")
        try_button = gr.Button("Try it")
    results = Results(summary, per_label, confusion, download, taught, try_image, try_audio, try_text, try_button,
                      try_label)
    assert len(results.outputs()) == RESULT_OUTPUTS
    return results


def result_values(ctx: Context, task: str, result: dict, folder: Path) -> tuple:
    import pandas as pd

    rows = [{"class": label, **{k: round(v, 3) if isinstance(v, float) else v for k, v in scores.items()}}
            for label, scores in result["per_label"].items()]
    checkpoint = Path(result["folder"])
    archive = checkpoint_zip(checkpoint, folder / "downloads")
    figure = checkpoint / "confusion_matrix.png"
    camera_on, mic_on, _, lines_on, _ = visibility(get_task(task).teach)
    return ("", pd.DataFrame(rows), str(figure) if figure.is_file() else None, archive,
            {"task": task, "key": result["name"]}, gr.update(visible=camera_on, value=None),
            gr.update(visible=mic_on, value=None), gr.update(visible=lines_on, value=""))


def checkpoint_zip(checkpoint: Path, folder: Path) -> str:
    """The checkpoint folder as a zip, without what stays local (resume state: training.push.local_patterns)."""
    from training.push import local_patterns

    patterns = local_patterns(json.loads((checkpoint / "config.json").read_text(encoding="utf-8")))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{checkpoint.name}.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in checkpoint.iterdir() if p.is_file()):
            if not any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns):
                archive.write(path, f"{checkpoint.name}/{path.name}")
    return str(target)


def forget_session(ctx: Context):
    """When a session's State is deleted (its page closed), remove its folder and models an hour later."""
    def forget(folder):
        if not folder:
            return

        def remove():
            for models in ctx.models.values():
                for key in [k for k, p in models.predictors.items() if Path(folder) in p.folder.parents]:
                    models.predictors.pop(key, None)
                    models.private.discard(key)
            shutil.rmtree(folder, ignore_errors=True)
        timer = threading.Timer(KEEP_SECONDS, remove)
        timer.daemon = True
        timer.start()
    return forget


def teach_endpoint(ctx: Context) -> None:
    """/teach (task, data, name) -> {"name", "accuracy", ...}: a project from one zip or CSV, trained with the
    defaults; afterwards /classify_image, /recognize_speech or /classify_text answer with model_name=name."""
    with gr.Row(visible=False):
        task = gr.Textbox(label="task")
        data = gr.File(label="data")
        name = gr.Textbox(label="name")
        out = gr.JSON(label="result")
        trigger = gr.Button("Run /teach")

    @user_errors
    def teach_api(task: str, data, name: str) -> dict:
        if task not in ctx.models:
            raise InputError(f"task must be one of {', '.join(ctx.models)}; got '{task}'.")
        if data is None:
            raise InputError("Give the project as a zip (a folder per class) or a CSV (text, label).")
        ROOT.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="api-", dir=ROOT))
        try:
            project = project_from_upload(task, data, folder / "upload")
            job = Job(project, model_folder(ctx, task, check_name(name, "The model name"), folder), ctx.checkpoints)
            job.run()
        finally:   # the extracted samples are done with; on a Space the model stays in the folder
            shutil.rmtree(folder / "upload" if ctx.sessions else folder, ignore_errors=True)
        if job.error is not None:
            raise job.error
        job.result["name"] = register(ctx, task, Path(job.result["folder"]))
        return {k: v for k, v in job.result.items() if k != "folder"}

    trigger.click(teach_api, [task, data, name], out, api_name="teach", concurrency_limit=1, concurrency_id="teach")
