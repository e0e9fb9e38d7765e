"""The README's shipped-checkpoints table: every checkpoint folder under checkpoints/ (whatever is shipped,
never a fixed list), with its size, recorded scores, training time and bare `Predictor.predict` p50 on one
CPU thread, on its task's sample input (an example file, decoding included).

    .venv/bin/python bench/serve.py --shipped [--write]

(`--write` puts the table into README.md and bench/RESULTS.md between their `shipped-checkpoints`
markers.) bench/serve.py and bench/portable.py take their sample inputs from here.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from speech_latency import timed

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
IMAGE_INPUT = REPO / "demo/examples/image/cat-1.png"
TEXT_INPUT = "i was terrified walking home alone in the dark last night"


def speech_input() -> Path:
    return sorted((REPO / "demo/examples/speech").glob("*.wav"))[0]


MARKERS = ("<!-- shipped-checkpoints:start -->", "<!-- shipped-checkpoints:end -->")


def shipped(root: Path) -> list[Path]:
    """Every checkpoint folder under root/<task>/, tasks in the registry's order."""
    from training.tasks import task_names
    return [c.parent for task in task_names() for c in sorted((root / task).glob("*/config.json"))]


def sample_input(task: str):
    return {"image": IMAGE_INPUT, "text": TEXT_INPUT, "speech": speech_input()}.get(task)


def shipped_size(folder: Path) -> int:
    """Bytes of what the folder ships (what `python -m training push` uploads)."""
    from training.checkpoint import read_record
    from training.push import local_patterns

    skip = local_patterns(read_record(folder))
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and not any(p.match(g) for g in skip))


def bare_p50(folder: Path, raw, n: int) -> float:
    """p50 of Predictor.predict on one CPU thread, milliseconds, decoding and preprocessing included."""
    import torch

    from demo.predictor import Predictor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predictor = Predictor.load(folder, "cpu")
        arg = str(raw) if isinstance(raw, Path) else raw
        timed(lambda: predictor.predict(arg), 5)   # warm-up
        return statistics.median(timed(lambda: predictor.predict(arg), n))
    finally:
        torch.set_num_threads(threads)


def recipe_for(folder: Path) -> str:
    rel = folder.relative_to(REPO).as_posix()
    for recipe in sorted((REPO / "recipes").glob("*.sh")):
        if rel in recipe.read_text():
            return f"`bash recipes/{recipe.name}`"
    return "n/a"


def shipped_row(folder: Path, n: int) -> str:
    from training.card import describe_size, hub_dataset_id, parameter_count
    from training.checkpoint import read_record

    config = read_record(folder)
    m, d = config.metrics, config.dataset
    model = f"{config.architecture}{describe_size(parameter_count(folder / 'model.safetensors'))}"
    if config.pretrained is not None:   # (an encoder model's file holds what trained, not its frozen embeddings)
        model += f", from {config.pretrained.kind or 'ImageNet weights'}"
    minutes = sum(float(r.training_seconds or 0) for r in config.runs()) / 60
    raw = sample_input(config.task)
    p50 = f"{bare_p50(folder, raw, n):.1f} ms" if raw is not None else "n/a"
    data = f"`{hub_dataset_id(config) or Path(str(d.id)).name}`, validation: {d.validation.describe()}"
    score = f"{m.accuracy:.1%} (macro-F1 {m.macro_f1:.3f})"
    folds = d.validation.cross_validated
    if d.sources:   # a run on several datasets: each one, and (unless the folds are the first one's) its score
        data = f"{len(d.sources)} datasets: " + ", ".join(f"`{source_name(x)}`" for x in d.sources)
        if folds:   # the others train every fold's run
            data += f", validation: the first one's {d.validation.describe()}"
        else:       # each on its own validation rows
            data += f", validation: each one's own ({d.sources[0].validation.describe()})"
            score += "; " + ", ".join(f"{source_name(x, hub=False)} {m.by_dataset[x.id].accuracy:.1%}" for x in d.sources)
    time = f"{minutes:.0f} min on {config.hardware or '?'}" + (
        f" (the model kept; its {len(m.folds)} fold runs before it are not counted)" if folds else "")
    return (f"| `{folder.relative_to(REPO).as_posix()}` | {model} | {data} | {score} | "
            f"{shipped_size(folder) / 1e6:.1f} MB | {p50} | {time} | "
            f"{recipe_for(folder)} |")


def source_name(source, hub: bool = True) -> str:
    """A dataset of a run on several (a config_record.DatasetRecord), by its folder's name, with the Hub id
    it mirrors (`hub`)."""
    from training.card import dataset_hub_id, folder_name

    name, mirrors = folder_name(source), dataset_hub_id(source) if hub else None
    return name if not mirrors or mirrors == str(source.id) else f"{name} ({mirrors})"


def shipped_table(root: Path, n: int) -> str:
    rows = [shipped_row(folder, n) for folder in shipped(root)]
    return "\n".join(["| checkpoint | model | data | validation accuracy | size | p50, 1 CPU thread | training | rebuild |",
                      "|---|---|---|---|---|---|---|---|", *rows])


def write_table(path: Path, table: str) -> None:
    text = path.read_text()
    start, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
    path.write_text(text[:start] + "\n" + table + "\n" + text[end:])
