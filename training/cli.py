"""`python -m training ...`: parse the command line (training/parser.py), run the command, report errors
in words. `main(argv)` runs in-process, as the tests call it."""

from __future__ import annotations

import json
import sys

from training.checkpoint import CheckpointError
from training.data import DatasetError
from training.export import ExportError
from training.parser import get_args_parser, run_settings
from training.records import TrainingError
from training.tasks import get_task


def run_command(args) -> dict:
    if args.command == "evaluate":
        from training.evaluate import run_evaluate
        report = run_evaluate(args.checkpoint, args.dataset, split=args.split, dataset_config=args.dataset_config,
                              revision=args.revision, input_column=args.input_column,
                              label_column=args.label_column, max_samples=args.max_samples,
                              batch_size=args.batch_size, device=args.device, workers=args.workers,
                              report_dir=args.report_dir, corrupt=args.corrupt)
    elif args.command == "calibrate":
        from training.evaluate import run_calibrate
        report = run_calibrate(args.checkpoint, args.dataset, device=args.device, workers=args.workers)
    elif args.command == "report":
        from training.evaluate import run_report
        report = run_report(args.checkpoint, args.dataset, device=args.device, workers=args.workers)
    elif args.command == "card":
        from training.card import write_model_card
        path = write_model_card(args.checkpoint, args.dataset_id)
        print(path)
        return {"card": str(path)}
    elif args.command == "export":
        from training.export import export_onnx
        report = export_onnx(args.checkpoint, quantize=args.quantize)
    elif args.command == "migrate":
        from training.migrate import migrate_folder
        report = migrate_folder(args.checkpoint)
    elif args.command == "push":
        from training.push import push
        info = push(args.checkpoint, args.repo_id, private=args.private, token=args.token, dataset_id=args.dataset_id)
        print(getattr(info, "commit_url", info))
        return {"commit": str(getattr(info, "commit_url", info))}
    else:
        from training import engine
        task = get_task(args.command)
        return engine.run(task, run_settings(task, args))
    print(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    try:
        return run_command(args)
    except (DatasetError, CheckpointError, TrainingError, ExportError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: the last finished epoch is saved; run the same command with --resume to continue.")
