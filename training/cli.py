"""`python -m training {image,text,speech} --dataset ...` trains; `python -m training evaluate` scores.

    python -m training image --dataset uoft-cs/cifar10             # a Hugging Face Hub id
    python -m training image --dataset ../shared/data/cifar10     # a local folder in Hub layout
    python -m training image --dataset photos/                    # class subfolders of images
    python -m training text --dataset reviews.csv --text-column body
    python -m training speech --dataset ../shared/data/speech_commands --group-column speaker_id
    torchrun --nproc_per_node 2 -m training image --dataset ...   # DistributedDataParallel
    python -m training evaluate --checkpoint checkpoints/image/cifar10 --dataset ... --split test
    python -m training push --checkpoint checkpoints/image/cifar10 --repo-id you/cifar10-resnet20
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from training.tasks import TASK_NAMES, get_task


def add_common_arguments(p: argparse.ArgumentParser, task_name: str, defaults: dict) -> None:
    d = p.add_argument_group("data")
    d.add_argument("--dataset", required=True,
                   help="Hub id (uoft-cs/cifar10), a local folder (Hub layout or class subfolders) or a "
                        "parquet/csv/json file")
    d.add_argument("--dataset-config", default=None, help="dataset configuration name on the Hub (e.g. v0.02)")
    d.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) to load")
    d.add_argument("--label-column", default=None, help="label column (default: auto, label or labels)")
    d.add_argument("--train-split", default="train")
    d.add_argument("--eval-split", default=None,
                   help="split used for validation (default: 'validation' if present, else carved from train)")
    d.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of train held out for validation when there is no validation split, "
                        "stratified by label (default: %(default)s)")
    d.add_argument("--group-column", default=None,
                   help="hold out whole groups (e.g. speaker_id) for validation instead of stratifying")
    d.add_argument("--max-train-samples", type=int, default=None, help="use at most this many training rows")
    d.add_argument("--max-eval-samples", type=int, default=None, help="use at most this many validation rows")
    d.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="processes decoding the data once before training (default: %(default)s)")
    d.add_argument("--no-cache", action="store_true", help="decode again instead of reusing the on-disk tensor cache")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=defaults["epochs"], help="(default: %(default)s)")
    t.add_argument("--batch-size", type=int, default=defaults["batch_size"], help="per process (default: %(default)s)")
    t.add_argument("--eval-batch-size", type=int, default=None, help="(default: twice --batch-size)")
    t.add_argument("--lr", type=float, default=defaults["lr"], help="peak learning rate (default: %(default)s)")
    t.add_argument("--weight-decay", type=float, default=defaults["weight_decay"], help="(default: %(default)s)")
    t.add_argument("--optimizer", choices=("sgd", "adamw"), default=defaults["optimizer"], help="(default: %(default)s)")
    t.add_argument("--momentum", type=float, default=defaults.get("momentum", 0.9),
                   help="SGD (Nesterov) momentum (default: %(default)s)")
    t.add_argument("--norm-lr-scale", type=float, default=1.0,
                   help="multiply the learning rate of BatchNorm parameters by this; airbench's fixed-scale "
                        "BatchNorm trains its shifts at 64x (default: %(default)s)")
    t.add_argument("--lookahead", action="store_true",
                   help="every 5 steps pull the weights toward a slow average of themselves and restart from "
                        "it; the average is the final model (airbench's Lookahead; SGD schedules)")
    t.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast on CUDA, fp32 elsewhere; bf16 also on CPUs with AMX or AVX512-BF16, "
                        "where it is about 3x faster for convolutions (default: %(default)s)")
    t.add_argument("--warmup-fraction", type=float, default=defaults.get("warmup_fraction", 0.1),
                   help="share of steps spent warming up the learning rate (default: %(default)s)")
    t.add_argument("--label-smoothing", type=float, default=defaults.get("label_smoothing", 0.0),
                   help="(default: %(default)s)")
    t.add_argument("--grad-clip", type=float, default=defaults.get("grad_clip", 0.0),
                   help="clip the gradient norm to this value; 0 = off (default: %(default)s)")
    t.add_argument("--class-weights", action=argparse.BooleanOptionalAction, default=defaults.get("class_weights", False),
                   help="weight the loss by inverse label frequency, for imbalanced data (default: %(default)s)")
    t.add_argument("--patience", type=int, default=0,
                   help="stop after this many epochs without a better validation accuracy; 0 = never")
    t.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    t.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: cuda, then mps, then cpu)")
    t.add_argument("--threads", type=int, default=0, help="CPU threads for torch; 0 = torch's default")
    t.add_argument("--output", default=None, help=f"checkpoint folder (default: checkpoints/{task_name}/<dataset name>)")
    t.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start from the weights of this checkpoint folder (same task, labels and model "
                        "arguments; its tokenizer too) instead of a fresh network, with a new optimiser and "
                        "schedule, e.g. a second, regularised run on top of a first")
    t.add_argument("--resume", action="store_true",
                   help="continue from the resume state in --output (after a crash or Ctrl-C)")
    t.add_argument("--quiet", action="store_true", help="no progress bars or summaries")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (model.safetensors + config.json)")
    p.add_argument("--dataset", required=True, help="Hub id, local folder or data file")
    p.add_argument("--dataset-config", default=None)
    p.add_argument("--revision", default=None)
    p.add_argument("--split", default="validation", help="split to score (default: %(default)s)")
    p.add_argument("--input-column", default=None, help="input column (default: auto for the task)")
    p.add_argument("--label-column", default=None)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default=None)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--report-dir", default=None, help="also write metrics.json and confusion_matrix.png here")


def add_card_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--dataset-id", default=None,
                   help="the dataset's Hub id for the card, when the model was trained on a local copy")


def add_calibrate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--dataset", default=None,
                   help="the dataset it was trained on (default: the path recorded in config.json)")
    p.add_argument("--device", default=None)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))


def add_push_arguments(p: argparse.ArgumentParser) -> None:
    add_card_arguments(p)
    p.add_argument("--repo-id", required=True, help="model repository on the Hub, e.g. you/cifar10-resnet20")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--token", default=None, help="Hub token (default: the one `hf auth login` saved)")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in TASK_NAMES:
        task = get_task(name)
        p = sub.add_parser(name, help=f"fine-tune an {name} classifier" if name == "image" else f"fine-tune a {name} classifier")
        task.add_arguments(p)
        add_common_arguments(p, name, task.DEFAULTS)
    add_evaluate_arguments(sub.add_parser("evaluate", help="score a checkpoint on a dataset split; prints JSON"))
    add_calibrate_arguments(sub.add_parser(
        "calibrate", help="choose the confidence below which the demo calls the model unsure (training does this)"))
    add_card_arguments(sub.add_parser("card", help="write the checkpoint's model card (README.md)"))
    add_push_arguments(sub.add_parser("push", help="upload a checkpoint folder to the Hugging Face Hub"))
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    from training.checkpoint import CheckpointError
    from training.data import DatasetError, default_name
    from training.engine import TrainingError

    try:
        if args.command == "evaluate":
            from training.evaluate import run_evaluate
            report = run_evaluate(args)
            print(json.dumps(report, indent=2))
            return report
        if args.command == "calibrate":
            from training.evaluate import run_calibrate
            report = run_calibrate(args)
            print(json.dumps(report, indent=2))
            return report
        if args.command == "card":
            from training.card import write_model_card
            path = write_model_card(args.checkpoint, args.dataset_id)
            print(path)
            return {"card": str(path)}
        if args.command == "push":
            from training.push import push
            info = push(args.checkpoint, args.repo_id, private=args.private, token=args.token,
                        dataset_id=args.dataset_id)
            print(getattr(info, "commit_url", info))
            return {"commit": str(getattr(info, "commit_url", info))}
        from training import engine
        task = get_task(args.command)
        if args.output is None:
            args.output = os.path.join("checkpoints", args.command, default_name(args.dataset))
        return engine.run(args, task)
    except (DatasetError, CheckpointError, TrainingError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: the last finished epoch is saved; run the same command with --resume to continue.")
