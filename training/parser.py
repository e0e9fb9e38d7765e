"""The command line's parser: `python -m training {<task>,evaluate,calibrate,card,report,push,export,migrate} ...`.

A task's subcommand has the task's own flags (generated from its settings dataclass), its input-column
flag, and the data and training flags (from DataSettings and TrainSettings, with the task's defaults).
`run_settings` turns a parsed task command into typed settings; nothing below the CLI sees a Namespace.
"""

from __future__ import annotations

import argparse
import os

from training.commands import (CalibrateSettings, CardSettings, EvaluateSettings, ExportSettings, MigrateSettings,
                               PushSettings, ReportSettings)
from training.settings import DataSettings, RunSettings, TrainSettings, add_flags, cli_fields, dest_of, from_flags
from training.tasks import Task, get_task, task_names

DESCRIPTION = """Fine-tune and score Triptych's classifiers.

    python -m training image --dataset uoft-cs/cifar10             # a Hugging Face Hub id
    python -m training image --dataset ../shared/data/cifar10 --dataset-id uoft-cs/cifar10   # a local copy
    python -m training image --dataset photos/                    # class subfolders of images
    python -m training text --dataset reviews.csv --text-column body
    python -m training speech --dataset ../shared/data/speech_commands --group-column speaker_id
    torchrun --nproc_per_node 2 -m training image --dataset ...   # DistributedDataParallel
    python -m training evaluate --checkpoint checkpoints/image/cifar10 --dataset ... --split test
    python -m training report --checkpoint checkpoints/image/cifar10   # draw its figures again
    python -m training push --checkpoint checkpoints/image/cifar10 --repo-id you/cifar10-resnet20
    python -m training export --checkpoint checkpoints/image/cifar10   # model.onnx, for onnxruntime
    python -m training migrate --checkpoint checkpoints/image/cifar10  # config.json in today's format
"""


def add_task_arguments(p: argparse.ArgumentParser, task: Task, suppress: bool = False) -> None:
    group = add_flags(p, task.Config, title=task.name, suppress=suppress)
    group.add_argument(task.input_flag, dest="input_column", default=argparse.SUPPRESS if suppress else None,
                       metavar="COLUMN", help=f"input column (default: auto, {', '.join(task.input_columns)})")
    add_flags(p, DataSettings, title="data", suppress=suppress)
    add_flags(p, TrainSettings, defaults=task.train_defaults, title="training", suppress=suppress)


# The commands that act on a checkpoint: name -> (their settings, their one-line help).
COMMANDS = {
    "evaluate": (EvaluateSettings, "score a checkpoint on a dataset split; prints JSON"),
    "calibrate": (CalibrateSettings, "choose the confidence below which the demo calls the model unsure (training "
                                     "does this)"),
    "card": (CardSettings, "write the checkpoint's model card (README.md); a folder in an older format gets its "
                           "config.json in format 2 first"),
    "report": (ReportSettings, "draw a checkpoint's training_curves.png and confusion_matrix.png again from its "
                               "metrics.json"),
    "push": (PushSettings, "upload a checkpoint folder to the Hugging Face Hub"),
    "export": (ExportSettings, "write the checkpoint as model.onnx (checked against PyTorch) for onnxruntime"),
    "migrate": (MigrateSettings, "rewrite a checkpoint's config.json in today's format (format 2, with timm's keys "
                                 "where timm builds the network) and its model card; the weights are not touched"),
}


def get_args_parser(suppress: bool = False) -> argparse.ArgumentParser:
    """The whole command line. With `suppress`, a task's flags that are not given leave nothing in the
    namespace: what is left names the flags given (`given_fields`)."""
    parser = argparse.ArgumentParser(prog="python -m training", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="--debug (anywhere, or TRIPTYCH_DEBUG=1): show the traceback of an error "
                                            "the command reports in words")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in task_names():
        task = get_task(name)
        add_task_arguments(sub.add_parser(name, help=task.summary or f"fine-tune a {name} classifier"), task,
                           suppress)
    for name, (settings, summary) in COMMANDS.items():
        add_flags(sub.add_parser(name, help=summary), settings)
    return parser


def command_settings(args: argparse.Namespace):
    """The typed settings of a parsed checkpoint command (evaluate, calibrate, card, report, push, export,
    migrate)."""
    return from_flags(COMMANDS[args.command][0], vars(args))


def run_settings(task: Task, args: argparse.Namespace, given: frozenset[str] | None = None) -> RunSettings:
    """Typed settings from a parsed task command: the task's settings checked (errors name the flags),
    and the checkpoint folder defaulting to checkpoints/<task>/<dataset name>. `given` names the fields the
    command line set (`given_fields`); None applies no default recipe."""
    from training.data import default_name

    values = vars(args)
    train = from_flags(TrainSettings, values)
    if train.output is None:
        train.output = os.path.join("checkpoints", task.name, default_name(values["dataset"][0]))
    data = from_flags(DataSettings, values, input_column=values.get("input_column"))
    return RunSettings(task.check(from_flags(task.Config, values)), data, train, given)


def given_fields(task: Task, argv: list[str]) -> frozenset[str]:
    """The settings fields (of the task's Config, DataSettings and TrainSettings) that `argv`, a task
    command, sets: whether or not a value equals the default, a flag given is the user's choice."""
    given = set(vars(get_args_parser(suppress=True).parse_args(argv)))
    names = {f.name for cls in (task.Config, DataSettings, TrainSettings) for f in cli_fields(cls) if dest_of(f) in given}
    return frozenset(names | ({"input_column"} & given))


def settings_from_argv(argv: list[str]) -> tuple[Task, RunSettings]:
    """The task and typed settings of a task command (`image --dataset ...`), as `python -m training` runs
    it: the flags given are recorded, and the task's default recipe fills the rest."""
    args = get_args_parser().parse_args(argv)
    task = get_task(args.command)
    return task, run_settings(task, args, given_fields(task, argv))
