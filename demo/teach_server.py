"""Teach on a shared server: session folders, their quotas and the sweep that reclaims them, training runs
one at a time, taught models' registration and export, and what the /teach endpoint does.

A visitor's session is their Gradio session (`demo.tabs.common.session_id`: one page load, or one
gradio_client Client). Everything Teach writes for it (captures, extracted uploads, downloads and, with
`private` as on a public Space, its models) lives in one folder, `Sessions.root/<session id>/`, and nowhere
else; a run's dataset is a temporary folder of its own. A session is reclaimed, folder and models, KEEP_SECONDS
(or $TRIPTYCH_TEACH_KEEP_SECONDS) after its last use, whether its page closed or never does (clients without
a heartbeat): a sweep runs every SWEEP_SECONDS (or a quarter of the keep time, if shorter), and the folders
of a server that stopped are removed by the next one to start. A run
that fails, is cancelled or finds its name taken leaves nothing: the name is checked before anything is
extracted, and the upload's extraction is removed when the run ends, whatever the end.

Quotas, per session: MAX_SESSION_BYTES on disk, MAX_SESSION_MODELS models, MAX_CAPTURES captures of at most
MAX_CAPTURE_BYTES; all sessions together, MAX_TEACH_BYTES. With `private` a model is registered under its
name and 128 random bits, kept from other sessions by `common.VisitorModels`; locally it is saved under
checkpoints/<task>/<name> and listed for everyone, as a command-line run would be.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from demo.lanes import Lane
from demo.predictor import ModelSet, Predictor
from demo.tabs.common import session_id
from demo.teach import MAX_SECONDS, check_name, project_from_upload, teach
from demo.uploads import megabytes
from training.tasks import InputError, get_task

log = logging.getLogger(__name__)

ROOT = Path(tempfile.gettempdir()) / "triptych-teach"
KEEP_SECONDS = 3600               # a session's folder and models live this long after its last use
KEEP_VARIABLE = "TRIPTYCH_TEACH_KEEP_SECONDS"   # an operator's (or the soak's) other keep time, in seconds
SWEEP_SECONDS = 300               # the sweep looks for sessions past their keep time this often (at most)
MAX_SESSION_BYTES = 300 * 2**20   # a session's folder: an extracted 100 MB project, and a few models (27 MB each)
MAX_SESSION_MODELS = 5            # models taught in one session; more are refused until the session ends
MAX_CAPTURES = 300                # webcam snapshots and recordings of one session
MAX_CAPTURE_BYTES = 20 * 2**20    # one capture (a minute of 48 kHz stereo WAV is 11 MB)
MAX_TEACH_BYTES = 10 * 2**30      # every session together: a Space's disk is shared with its cache
TEACH_WAITING = 3                 # runs waiting behind the one that trains; more are refused at once


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


@dataclass
class Session:
    folder: Path
    used: float = field(default_factory=time.monotonic)   # last use, time.monotonic()


class Sessions:
    """The session folders of this server, under `root`, each reclaimed KEEP_SECONDS after its last use.
    `on_reclaim(folder)` is called before a folder is removed (to unregister its models)."""

    def __init__(self, base: Path = ROOT, keep: float | None = None, on_reclaim=None):
        keep = float(os.environ.get(KEEP_VARIABLE, KEEP_SECONDS)) if keep is None else keep
        self.base, self.keep, self.on_reclaim = Path(base), keep, on_reclaim
        self.root = self.base / f"server-{os.getpid()}-{secrets.token_hex(4)}"
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None

    def folder(self, sid: str) -> Path:
        """The session's folder, created on first use; every call counts as a use."""
        with self._lock:
            session = self._sessions.setdefault(sid, Session(self.root / sid))
            session.used = time.monotonic()
        session.folder.mkdir(parents=True, exist_ok=True)
        self.start()
        return session.folder

    def close(self, sid: str | None) -> None:
        """The session's page closed: its keep time runs from now (as from any last use)."""
        with self._lock:
            if sid in self._sessions:
                self._sessions[sid].used = time.monotonic()

    def sweep(self, now: float | None = None) -> list[Path]:
        """Reclaim every session unused for `keep` seconds; returns their folders."""
        now = time.monotonic() if now is None else now
        with self._lock:
            gone = [sid for sid, s in self._sessions.items() if now - s.used >= self.keep]
            folders = [self._sessions.pop(sid).folder for sid in gone]
        for folder in folders:
            if self.on_reclaim is not None:
                self.on_reclaim(folder)
            shutil.rmtree(folder, ignore_errors=True)
        if self.root.is_dir():
            os.utime(self.root)   # alive: another server starting does not take this one's folders as stale
        return folders

    def remove_stale(self) -> list[Path]:
        """Remove the folders of servers that stopped: untouched for longer than the keep time, and than two
        sweeps of any server (each touches its folder at every sweep, at most SWEEP_SECONDS apart)."""
        stale = [p for p in self.base.glob("server-*") if p != self.root and p.is_dir()
                 and time.time() - p.stat().st_mtime > max(self.keep, 2 * SWEEP_SECONDS)]
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        return stale

    def start(self) -> None:
        """The sweep, in a daemon thread, from the first session on (nothing runs at import or build), every
        quarter of the keep time or SWEEP_SECONDS, whichever is shorter: a session is gone at most that
        long after its keep time."""
        with self._lock:
            if self._sweeper is not None:
                return
            every = min(SWEEP_SECONDS, max(self.keep / 4, 1.0))
            self._sweeper = threading.Thread(target=self._sweep_every, args=(every,), daemon=True,
                                             name="teach-sweep")
        self.remove_stale()
        self._sweeper.start()

    def _sweep_every(self, every: float) -> None:
        while True:
            time.sleep(every)
            self.sweep()

    def check_room(self, folder: Path, adding: int = 0) -> None:
        """Refuse `adding` bytes more when the session's folder or all sessions would pass their quota."""
        if folder_bytes(folder) + adding > MAX_SESSION_BYTES:
            raise InputError(f"This session keeps {megabytes(MAX_SESSION_BYTES)} at most (samples, models, "
                             "downloads), and it is full. Reload the page to start a new session.")
        if folder_bytes(self.root) + adding > MAX_TEACH_BYTES:
            raise InputError("The server's space for taught models is full. Please try again later.")


# ---------------------------------------------------------------------------------------------- jobs

class Job:
    """One teach run in a worker thread: `make_project(stop)` (extracting an upload, say) then training,
    its progress as events, its stop flag, its outcome; `cleanup` (a folder) is removed when it ends."""

    def __init__(self, make_project, output: Path, checkpoints: Path, cleanup: Path | None = None):
        from training.engine import Hooks

        self.make_project, self.output, self.checkpoints, self.cleanup = make_project, output, checkpoints, cleanup
        self.events: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.task, self.result, self.error = None, None, None
        self.hooks = Hooks(on_step=lambda e, s, n, loss: self.events.put(("step", e, s, n, loss)),
                           on_epoch=lambda row: self.events.put(("epoch", row)), should_stop=self.stop.is_set)

    def run(self) -> None:
        # With the app's own torch thread count (cores / concurrent requests): measured on 2 busy cores, a
        # teach run on both cores was 3 to 100 times slower than on one, and so were the app's requests.
        try:
            project = self.make_project(self.stop.is_set)
            self.task = project.task
            self.result = teach(project, self.output, checkpoints=self.checkpoints, hooks=self.hooks,
                                time_limit=MAX_SECONDS, stop=self.stop.is_set)
            self.events.put(("export",))
            add_onnx(self.output)
        except BaseException as e:   # reported by whoever waits for it
            self.error = e
        finally:
            if self.cleanup is not None:
                shutil.rmtree(self.cleanup, ignore_errors=True)

    def drain(self) -> list:
        out = []
        while not self.events.empty():
            out.append(self.events.get())
        return out


def add_onnx(folder: Path) -> None:
    """model.onnx beside the taught weights (training/export.py), so that the download runs with onnxruntime
    alone. A model that cannot be exported is still served and downloaded, without it; the log says why."""
    from training.export import export_onnx

    try:
        export_onnx(folder)
    except Exception:   # noqa: BLE001 (an export that fails must not lose the model just taught)
        log.exception("exporting %s to ONNX failed; its download has no model.onnx", folder)


@dataclass
class Teacher:
    """Teach for one app: its models, where taught models go, whether they are private (a Space), its
    sessions and its lane (one run at a time, TEACH_WAITING more waiting)."""
    models: dict[str, ModelSet]
    checkpoints: Path
    private: bool = False
    sessions: Sessions = None
    lane: Lane = field(default_factory=lambda: Lane("training runs", running=1, waiting=TEACH_WAITING))

    def __post_init__(self):
        self.checkpoints = Path(self.checkpoints)
        if self.sessions is None:
            self.sessions = Sessions(on_reclaim=self.forget_models)

    def session(self, request) -> tuple[str, Path]:
        """(session id, folder) of the request's session; a request without one gets a session of its own."""
        sid = session_id(request) or secrets.token_hex(16)
        return sid, self.sessions.folder(sid)

    def model_folder(self, task: str, name: str, folder: Path) -> Path:
        """Where a taught model is saved: checkpoints/<task>/<name> locally, the session's folder on a Space.
        A name in use, or a session at its model quota, is refused before anything is written."""
        name = check_name(name, "The model name")
        root = folder / "models" / task if self.private else self.checkpoints / task
        if name in self.models[task].names or (root / name).exists():
            raise InputError(f"A {task} model named '{name}' exists already; choose another name.")
        if self.private and len(list(folder.glob("models/*/*"))) >= MAX_SESSION_MODELS:
            raise InputError(f"This session has taught {MAX_SESSION_MODELS} models, the most one session keeps. "
                             "Reload the page to start a new session.")
        self.sessions.check_room(folder)
        return root / name

    def job(self, task: str, data, name: str, folder: Path) -> Job:
        """A Job training the upload `data` (a zip or a CSV) as `name`: the name is checked first, the upload
        extracted inside the session's folder by the job, and that extraction removed when it ends."""
        if task not in self.models or get_task(task).teach is None:
            raise InputError(f"task must be one of {', '.join(t for t in self.models if get_task(t).teach)}; "
                             f"got '{task}'.")
        if data is None:
            raise InputError("Give the project as a zip (a folder per class) or a CSV (text, label).")
        output = self.model_folder(task, name, folder)
        upload = folder / "upload" / secrets.token_hex(8)
        return Job(lambda stop: project_from_upload(task, data, upload, stop=stop), output, self.checkpoints,
                   cleanup=upload)

    def run(self, job: Job):
        """Run `job` in its turn: yields ("waiting", runs ahead) until it may start, then ("running", new
        events) until it ends. Closing the generator (a cancel) stops the job without waiting for it: the
        worker gives the lane's place back when it has stopped, so the event loop is never held."""
        ticket = self.lane.enter()
        handed = False
        try:
            while ahead := self.lane.ahead(ticket, timeout=0.3):
                yield "waiting", ahead
            worker = threading.Thread(target=self._work, args=(job, ticket), daemon=True, name="teach-run")
            worker.start()
            handed = True
            while worker.is_alive():
                worker.join(0.3)
                yield "running", job.drain()
            yield "running", job.drain()
        finally:
            job.stop.set()
            if not handed:
                self.lane.leave(ticket)

    def _work(self, job: Job, ticket) -> None:
        try:
            job.run()
        finally:
            self.lane.leave(ticket)

    def succeeded(self, job: Job) -> bool:
        """True when the job made a model, False when it was cancelled; a failure raises InputError, in
        words (the engine's and the dataset reader's errors are the visitor's data), a fault as it is."""
        from training.data import DatasetError
        from training.engine import Cancelled
        from training.records import TrainingError

        if isinstance(job.error, Cancelled):
            return False
        if isinstance(job.error, (TrainingError, DatasetError)):
            raise InputError(f"Training failed: {job.error}") from job.error
        if job.error is not None:
            raise job.error
        return True

    def register(self, task: str, folder: Path) -> str:
        """Load a taught checkpoint into the app: it joins its task's models at once, under its name, or on a
        Space under its name and 128 random bits, for its session alone."""
        models = self.models[task]
        key = f"{folder.name}-{secrets.token_hex(16)}" if self.private else folder.name
        predictor = Predictor.load(folder, models.device)
        predictor.name = key            # what its results and panels call it: the name it is served by
        models.predictors[key] = predictor
        if self.private:
            models.private.add(key)
        return key

    def session_models(self, task: str, sid: str | None) -> list[str]:
        """The model picker's choices for one session: the listed models and, on a Space, its own."""
        models = self.models[task]
        own = [k for k, p in dict.items(models.predictors) if k in models.private and sid in p.folder.parts]
        return models.names + sorted(own)

    def forget_models(self, folder: Path) -> None:
        """Unregister every model that lives under `folder` (a session being reclaimed)."""
        for models in self.models.values():
            for key in [k for k, p in dict.items(models.predictors) if Path(folder) in p.folder.parents]:
                models.predictors.pop(key, None)
                models.private.discard(key)

    def capture(self, source, folder: Path) -> str:
        """Keep a webcam snapshot or a recording in the session's folder, within the capture quotas."""
        source = Path(source)
        size = source.stat().st_size
        captures = folder / "captures"
        if size > MAX_CAPTURE_BYTES:
            raise InputError(f"The capture is {megabytes(size)}; captures up to {megabytes(MAX_CAPTURE_BYTES)} "
                             "are kept. Record a shorter clip.")
        if captures.is_dir() and sum(1 for _ in captures.iterdir()) >= MAX_CAPTURES:
            raise InputError(f"This session has {MAX_CAPTURES} captures, the most one session keeps. Upload "
                             "the rest as files, or reload the page to start a new session.")
        self.sessions.check_room(folder, size)
        captures.mkdir(parents=True, exist_ok=True)
        target = captures / f"{secrets.token_hex(8)}{source.suffix.lower() or '.png'}"
        shutil.copyfile(source, target)
        return str(target)

    def export(self, checkpoint: Path, folder: Path) -> str:
        """The checkpoint folder as a zip in the session's folder, without what stays local (resume state:
        training.push.local_patterns)."""
        from training.push import local_patterns

        patterns = local_patterns(json.loads((checkpoint / "config.json").read_text(encoding="utf-8")))
        (folder / "downloads").mkdir(parents=True, exist_ok=True)
        target = folder / "downloads" / f"{checkpoint.name}.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in checkpoint.iterdir() if p.is_file()):
                if not any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns):
                    archive.write(path, f"{checkpoint.name}/{path.name}")
        return str(target)

    def teach_api(self, task: str, data, name: str, request):
        """/teach: train the upload with the task's defaults in the caller's session. Yields None while it
        waits or trains, then the result (the model's name and scores)."""
        sid, folder = self.session(request)
        job = self.job(task, data, name, folder)
        for _ in self.run(job):
            yield None
        if not self.succeeded(job):
            raise InputError("Cancelled: nothing was saved.")
        result = {k: v for k, v in job.result.items() if k != "folder"}
        result["name"] = self.register(task, job.output)
        yield result
