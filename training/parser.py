"""The command line's parser: `python -m training {<task>,evaluate,calibrate,card,report,push,export,migrate} ...`.

A task's subcommand has the task's own flags (generated from its settings dataclass), its input-column
flag, and the data and training flags (from DataSettings and TrainSettings, with the task's defaults).
`run_settings` turns a parsed task command into typed settings; nothing below the CLI sees a Namespace.
"""

from __future__ import annotations

import argparse
import os

from training.settings import DataSettings, RunSettings, TrainSettings, add_flags, default_workers, from_flags
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


def add_task_arguments(p: argparse.ArgumentParser, task: Task) -> None:
    group = add_flags(p, task.Config, title=task.name)
    group.add_argument(task.input_flag, dest="input_column", default=None, metavar="COLUMN",
                       help=f"input column (default: auto, {', '.join(task.input_columns)})")
    add_flags(p, DataSettings, title="data")
    add_flags(p, TrainSettings, defaults=task.train_defaults, title="training")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (model.safetensors + config.json)")
    p.add_argument("--dataset", required=True, help="Hub id, local folder or data file")
    p.add_argument("--dataset-config", default=None)
    p.add_argument("--revision", default=None)
    p.add_argument("--split", default="validation",
                   help="split to score (default: %(default)s; on a dataset without one, the validation rows the "
                        "checkpoint's run carved from train, as it recorded)")
    p.add_argument("--input-column", default=None, help="input column (default: auto for the task)")
    p.add_argument("--label-column", default=None)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default=None)
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--report-dir", default=None, help="also write metrics.json and confusion_matrix.png here")
    p.add_argument("--corrupt", default=None, metavar="NAME",
                   help="score a corrupted copy of the split: speech has reverb (a room, RT60 0.5 s), noise (white, "
                        "10 dB SNR) and telephone (8 kHz, 300-3400 Hz)")


def add_card_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--dataset-id", default=None,
                   help="the dataset's Hub id (owner/name) for the card (default: the one recorded at training "
                        "time by --dataset-id or a Hub id --dataset)")


def add_calibrate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--dataset", default=None, action="append",
                   help="the dataset it was trained on (default: the path recorded in config.json); repeated, in "
                        "the recorded order, for a run on several")
    p.add_argument("--device", default=None)
    p.add_argument("--workers", type=int, default=default_workers())


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--dataset", default=None, action="append",
                   help="only for a checkpoint whose metrics.json holds no confusion matrix (written before it "
                        "was recorded): the dataset it was trained on, scored again on its validation rows "
                        "(default: the path recorded in config.json; repeated for a run on several)")
    p.add_argument("--device", default=None)
    p.add_argument("--workers", type=int, default=default_workers())


def add_push_arguments(p: argparse.ArgumentParser) -> None:
    add_card_arguments(p)
    p.add_argument("--repo-id", required=True, help="model repository on the Hub, e.g. you/cifar10-resnet20")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--token", default=None, help="Hub token (default: the one `hf auth login` saved)")


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--quantize", default=None, choices=("int8",),
                   help="also write model.int8.onnx: onnxruntime's dynamic int8 quantisation of the weights")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in task_names():
        task = get_task(name)
        add_task_arguments(sub.add_parser(name, help=task.summary or f"fine-tune a {name} classifier"), task)
    add_evaluate_arguments(sub.add_parser("evaluate", help="score a checkpoint on a dataset split; prints JSON"))
    add_calibrate_arguments(sub.add_parser(
        "calibrate", help="choose the confidence below which the demo calls the model unsure (training does this)"))
    add_card_arguments(sub.add_parser("card", help="write the checkpoint's model card (README.md); a folder in an "
                                                   "older format gets its config.json in format 2 first"))
    add_report_arguments(sub.add_parser(
        "report", help="draw a checkpoint's training_curves.png and confusion_matrix.png again from its metrics.json"))
    add_push_arguments(sub.add_parser("push", help="upload a checkpoint folder to the Hugging Face Hub"))
    add_export_arguments(sub.add_parser(
        "export", help="write the checkpoint as model.onnx (checked against PyTorch) for onnxruntime"))
    add_migrate_arguments(sub.add_parser(
        "migrate", help="rewrite a checkpoint's config.json in today's format (format 2, with timm's keys where "
                        "timm builds the network) and its model card; the weights are not touched"))
    return parser


def add_migrate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")


def run_settings(task: Task, args: argparse.Namespace) -> RunSettings:
    """Typed settings from a parsed task command: the task's settings checked (errors name the flags),
    and the checkpoint folder defaulting to checkpoints/<task>/<dataset name>."""
    from training.data import default_name

    values = vars(args)
    train = from_flags(TrainSettings, values)
    if train.output is None:
        train.output = os.path.join("checkpoints", task.name, default_name(values["dataset"][0]))
    data = from_flags(DataSettings, values, input_column=values.get("input_column"))
    return RunSettings(task.check(from_flags(task.Config, values)), data, train)
