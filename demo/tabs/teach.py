"""The Teach tab: name some classes, give each a few examples (uploads, webcam, microphone, or lines of
text), train a classifier of your own in seconds, try it, download it. Components and wiring only: the
project and its checks are demo/teach.py; sessions, runs, registration, export and the /teach endpoint's
logic are demo/teach_server.py. Inputs reach each function by name: a form's components come as a set
(Gradio passes {component: value}), read back through the dataclasses that hold them.

Locally a taught model is saved under checkpoints/<task>/<name> and joins that task's model picker at once.
With `sessions` (a public Space, or `--share`) each visitor's samples and models stay in a session folder
of their own, their models are served for them alone under a name no one else can guess, and the folder is
reclaimed an hour after the session's last use.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr

from demo.predictor import ModelSet
from demo.tabs.common import user_errors
from demo.teach import VAL_FRACTION, Project, problems, project_from_upload
from demo.teach_server import Job, Teacher
from training.tasks import InputError, get_task

SLOTS = 4                       # class slots shown; a project with more classes comes as one zip or CSV
MAX_LINES_CHARS = 2**20         # of one class's lines of text (1,000 texts of a thousand characters)


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

    def inputs(self) -> set:
        return {self.name, self.files, self.lines, self.captured}


@dataclass
class Form:
    """The components that describe a project (`project(values)` reads one from their values), the
    session's State and what a whole-project upload was found to hold (`summary`)."""
    modality: gr.Radio
    name: gr.Textbox
    noise: gr.Audio
    whole: gr.File
    session: gr.State
    summary: gr.State
    slots: list[Slot]

    def inputs(self) -> set:
        return {self.modality, self.name, self.noise, self.whole, self.session,
                *(c for slot in self.slots for c in slot.inputs())}

    def project(self, teacher: Teacher, values: dict) -> Project:
        """The project the slots describe (the whole-project upload is read by the run itself)."""
        task = modalities(teacher)[values[self.modality]]
        recipe = get_task(task).teach
        project = Project(task, noise=[values[self.noise]] if values[self.noise] and recipe.noise_label else [])
        for k, slot in enumerate(self.slots, 1):
            label, lines = (values[slot.name] or "").strip(), values[slot.lines] or ""
            if len(lines) > MAX_LINES_CHARS:
                raise InputError(f"Class {k}'s examples hold over {MAX_LINES_CHARS:,} characters; upload them as a "
                                 "CSV instead.")
            samples = ([line.strip() for line in lines.splitlines() if line.strip()] if recipe.layout == "csv"
                       else [*(values[slot.files] or []), *(values[slot.captured] or [])])
            if label or samples:
                project.add(label or f"class {k}", samples)
        return project


def modalities(teacher: Teacher) -> dict[str, str]:
    """What the Teach tab offers: each served task that can be taught, by its recipe's title."""
    return {get_task(t).teach.title: t for t in teacher.models if get_task(t).teach is not None}


def build(models: dict[str, ModelSet], pickers: dict, checkpoints, sessions: bool = False) -> None:
    teacher = Teacher({t: models[t] for t in pickers}, Path(checkpoints), private=sessions)
    gr.Markdown("Teach a classifier of your own: choose what it learns from, name two or more classes, give each "
                "some examples, and train. It learns in seconds from a model that already knows images, speech "
                f"or English, and the result is a normal checkpoint{'' if sessions else ' under checkpoints/'}.")
    # A function, not the bound method: Gradio deep-copies the app's config (this callback in it) for every
    # page load, and a bound method's copy copies its object, here the sessions, the teacher and every
    # model's weights (1.6 s a page load, against 0.04 s; several seconds on a busy machine).
    session = gr.State(None, time_to_live=None, delete_callback=lambda sid: teacher.sessions.close(sid))
    choices = list(modalities(teacher))
    recipe = get_task(modalities(teacher)[choices[0]]).teach
    with gr.Row():
        modality = gr.Radio(choices, value=choices[0], label="Teach from")
        name = gr.Textbox(value=f"my-{choices[0].lower()}s", label="Model name", max_lines=1)
    slots = [class_slot(k, recipe) for k in range(SLOTS)]
    noise = gr.Audio(sources=["microphone", "upload"], type="filepath", visible=recipe.noise_label is not None,
                     label="Background noise: about 20 s of the room with nobody speaking")
    whole = gr.File(label="Or upload the whole project: a zip with a folder per class, or a CSV (text, label)",
                    file_types=[".zip", ".csv"], elem_id="teach-project")
    form = Form(modality, name, noise, whole, session, gr.State(""), slots)
    status = gr.Markdown(elem_id="teach-status")
    with gr.Row():
        train_button = gr.Button("Train", variant="primary")
        cancel = gr.Button("Cancel", variant="stop")
    curve = gr.LinePlot(x="epoch", y="value", color="series", label="Training: loss and validation accuracy",
                        y_lim=[0, None], height=240)
    results = result_panel()
    wire_form(teacher, form, status)
    running = train_button.click(train_fn(teacher, form, status, curve, results, pickers), form.inputs(),
                                 [status, curve, *results.outputs(), session, *pickers.values()],
                                 concurrency_limit=None, concurrency_id="teach-lane", api_visibility="private")
    cancel.click(lambda: "Cancelled: the run stopped, and nothing of it was saved.", None, status, cancels=[running],
                 queue=False, api_visibility="private")
    results.wire(teacher)
    teach_endpoint(teacher)


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


def wire_form(teacher: Teacher, form: Form, status) -> None:
    """Visibility per modality, captures added to their class, and the status after every change: counted
    from the components (cheap, so outside the queue), with a whole-project upload read once, in the queue,
    when it or the modality changes."""
    def show(choice):
        recipe = get_task(modalities(teacher)[choice]).teach
        updates = {form.noise: gr.update(visible=recipe.noise_label is not None)}
        for slot in form.slots:
            for component, shown in zip((slot.camera, slot.mic, slot.capture_box, slot.lines, slot.files),
                                        visibility(recipe)):
                updates[component] = gr.update(visible=shown)
        return updates
    targets = [c for s in form.slots for c in (s.camera, s.mic, s.capture_box, s.lines, s.files)]
    form.modality.change(user_errors(show), form.modality, [*targets, form.noise], queue=False,
                         api_visibility="private")
    # The suggested model name is set in the browser, at once: an answer from a busy server could come after
    # the visitor typed a name of their own, and overwrite it.
    form.modality.input(None, form.modality, form.name, js="(choice) => `my-${choice.toLowerCase()}s`",
                        api_visibility="private")
    for slot in form.slots:
        slot.add.click(capture_fn(teacher, slot, form.session), {slot.camera, slot.mic, slot.captured},
                       [slot.captured, slot.camera, slot.mic, form.session], api_visibility="private")
    gr.on([form.whole.change, form.modality.change], upload_summary_fn(teacher, form), {form.whole, form.modality},
          form.summary, concurrency_limit=2, concurrency_id="teach-check", api_visibility="private")
    changed = [c.change for c in form.inputs() if c is not form.session] + [form.summary.change]
    gr.on(changed, user_errors(lambda values: describe(teacher, form, values)), form.inputs() | {form.summary},
          status, queue=False, api_visibility="private", show_progress="hidden")


def capture_fn(teacher: Teacher, slot: Slot, session):
    @user_errors
    def capture(values: dict, request: gr.Request):
        """Keep a webcam snapshot or a recording in the session's folder, as one more example of its class."""
        source = values[slot.camera] or values[slot.mic]
        if source is None:
            raise InputError("Take a snapshot or record a clip first, then add it.")
        sid, folder = teacher.session(request)
        return {slot.captured: [*(values[slot.captured] or []), teacher.capture(source, folder)], slot.camera: None,
                slot.mic: None, session: sid}
    return capture


def upload_summary_fn(teacher: Teacher, form: Form):
    def upload_summary(values: dict) -> str:
        """What the whole-project upload holds (checked and counted, nothing extracted), or why it is refused."""
        if values[form.whole] is None:
            return ""
        try:
            project = project_from_upload(modalities(teacher)[values[form.modality]], values[form.whole], None)
        except InputError as e:
            return f"> {e}"
        return summarised(project)
    return user_errors(upload_summary)


def summarised(project: Project) -> str:
    counts = ", ".join(f"**{name}**: {n}" for name, n in project.counts().items()) or "no classes yet"
    missing = problems(project)
    noise = f"; background noise: {len(project.noise)} recording(s)" if project.recipe.noise_label else ""
    return f"{counts}{noise}.\n\n" + ("\n".join(f"- {p}" for p in missing) if missing else "Ready to train.")


def describe(teacher: Teacher, form: Form, values: dict) -> str:
    """How many samples each class has, and what is missing before training can start."""
    if values[form.whole] is not None:
        return values[form.summary] or "Reading the upload..."
    try:
        return summarised(form.project(teacher, values))
    except InputError as e:
        return f"> {e}"


# ------------------------------------------------------------------------------------------ training

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


def train_fn(teacher: Teacher, form: Form, status, curve, results, pickers: dict):
    @user_errors
    def train_model(values: dict, request: gr.Request, progress=gr.Progress()):
        """Train the project; yields the status and the curve, and at the end the results."""
        sid, folder = teacher.session(request)
        task = modalities(teacher)[values[form.modality]]
        if values[form.whole] is not None:
            job = teacher.job(task, values[form.whole], values[form.name], folder)
        else:
            project = form.project(teacher, values)
            if problems(project):
                raise InputError(" ".join(problems(project)))
            job = Job(lambda stop: project, teacher.model_folder(task, values[form.name], folder),
                      teacher.checkpoints)
        rows: list[dict] = []
        for state, news in teacher.run(job):
            if state == "waiting":
                yield {status: f"Waiting: {news} training run{'s' * (news > 1)} ahead of yours.", form.session: sid}
                continue
            yield {status: progressed(news, rows, progress), curve: curve_frame(rows), form.session: sid}
        yield finished(teacher, job, rows, sid, folder, status, curve, results, pickers)
    return train_model


def progressed(events: list, rows: list, progress) -> str:
    text = f"Epoch {rows[-1]['epoch']}: validation accuracy {rows[-1]['val_accuracy']:.0%}" if rows else "Training..."
    for event in events:
        if event[0] == "epoch":
            rows.append(event[1])
            text = f"Epoch {event[1]['epoch']}: validation accuracy {event[1]['val_accuracy']:.0%}"
        elif event[0] == "export":
            text = "Trained. Writing model.onnx for the download..."
        else:
            _, epoch, step, steps, loss = event
            progress((step + 1, steps), desc=f"epoch {epoch + 1}, loss {loss:.3f}")
    return text


def finished(teacher: Teacher, job, rows: list, sid: str, folder: Path, status, curve, results, pickers) -> dict:
    """The results once the run is over: scores, confusion matrix, download, the try-it panel; or why not."""
    if not teacher.succeeded(job):
        return {status: "Cancelled: nothing was saved.", curve: curve_frame(rows), **results.cleared()}
    result = job.result
    key = teacher.register(job.task, Path(result["folder"]))
    text = (f"**{key}**: validation accuracy **{result['accuracy']:.0%}** on {result['num_validation']} held-out "
            f"examples ({round(100 * VAL_FRACTION)}% of each class), {result['epochs']} epochs in {result['seconds']:.0f} s. "
            f"It is in the {job.task} tab's model picker now. So few held-out examples flatter it: expect "
            "less on inputs unlike yours (other lighting, voices, wording), and give each class more varied "
            "examples to do better.")
    archive = teacher.export(Path(result["folder"]), folder)
    return {status: text, curve: curve_frame(rows), **results.shown(job.task, key, result, archive),
            **{picker: gr.update(choices=teacher.session_models(task, sid)) for task, picker in pickers.items()
               if task == job.task}}


# ------------------------------------------------------------------------------------------- results

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
        return [getattr(self, f.name) for f in fields(self) if f.name not in ("try_button", "try_label")]

    def cleared(self) -> dict:
        hidden = gr.update(visible=False)
        return {self.summary: "", self.per_label: None, self.confusion: None, self.download: None, self.taught: None,
                self.try_image: hidden, self.try_audio: hidden, self.try_text: hidden}

    def shown(self, task: str, key: str, result: dict, archive: str) -> dict:
        import pandas as pd

        rows = [{"class": label, **{k: round(v, 3) if isinstance(v, float) else v for k, v in scores.items()}}
                for label, scores in result["per_label"].items()]
        figure = Path(result["folder"]) / "confusion_matrix.png"
        camera_on, mic_on, _, lines_on, _ = visibility(get_task(task).teach)
        return {self.summary: "", self.per_label: pd.DataFrame(rows),
                self.confusion: str(figure) if figure.is_file() else None, self.download: archive,
                self.taught: {"task": task, "key": key}, self.try_image: gr.update(visible=camera_on, value=None),
                self.try_audio: gr.update(visible=mic_on, value=None), self.try_text: gr.update(visible=lines_on, value="")}

    def wire(self, teacher: Teacher) -> None:
        def try_it(values: dict):
            taught = values[self.taught]
            if not taught:
                raise InputError("Train a model first.")
            predictor = teacher.models[taught["task"]].get(taught["key"])
            capture = get_task(taught["task"]).teach.capture
            raw = {"webcam": values[self.try_image], "microphone": values[self.try_audio]}.get(capture,
                                                                                             values[self.try_text])
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                raise InputError("Give it something to classify first.")
            return predictor.predict(raw)
        self.try_button.click(user_errors(try_it), {self.taught, self.try_image, self.try_audio, self.try_text},
                              self.try_label, api_visibility="private")


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
    return Results(summary, per_label, confusion, download, taught, try_image, try_audio, try_text, try_button,
                   try_label)


def teach_endpoint(teacher: Teacher) -> None:
    """/teach (task, data, name) -> {"name", "accuracy", ...}: a project from one zip or CSV, trained with the
    defaults in the caller's session (teach_server.Teacher.teach_api); afterwards /classify_image,
    /recognize_speech or /classify_text answer with model_name=name, for that caller."""
    with gr.Row(visible=False):
        task = gr.Textbox(label="task")
        data = gr.File(label="data")
        name = gr.Textbox(label="name")
        out = gr.JSON(label="result")
        trigger = gr.Button("Run /teach")

    @user_errors
    def teach_api(task: str, data, name: str, request: gr.Request = None):
        for answer in teacher.teach_api(task, data, name, request):
            yield gr.skip() if answer is None else answer

    teach_api.__doc__ = ("Train a classifier from one upload (a zip with a folder per class, or a CSV with a text and a "
                         "label column) with the task's defaults, in the caller's session; returns the model's name "
                         "(model_name for the task's endpoints) and its validation scores.")
    trigger.click(teach_api, [task, data, name], out, api_name="teach", concurrency_limit=None,
                  concurrency_id="teach-lane")
