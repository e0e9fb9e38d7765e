"""`python -m training ...`: parse the command line (training/parser.py), run the command, report the
project's own errors in words (training/errors.py). `main(argv)` runs in-process, as the tests call it."""

from __future__ import annotations

import json
import os
import sys

from training.errors import TriptychError
from training.parser import COMMANDS, command_settings, get_args_parser, given_fields, run_settings
from training.tasks import get_task


def run_task(args, argv: list[str]) -> dict:
    """A training command: a run, a cross-validation (--folds) or its plan (--dry-run)."""
    from training import engine
    from training.folds import cross_validate

    task = get_task(args.command)
    settings = run_settings(task, args, given_fields(task, argv))
    if settings.train.dry_run:
        planned = engine.plan(task, settings)
        print(json.dumps(planned, indent=2))
        return planned
    return cross_validate(task, settings, engine.Hooks()) if settings.data.folds else engine.run(task, settings)


def run_command(args, argv: list[str]) -> dict:
    if args.command not in COMMANDS:
        return run_task(args, argv)
    s = vars(command_settings(args))
    if args.command == "card":
        from training.card import write_model_card
        path = write_model_card(s["checkpoint"], s["dataset_id"])
        print(path)
        return {"card": str(path)}
    if args.command == "push":
        from training.push import push
        info = push(s.pop("checkpoint"), s.pop("repo_id"), **s)
        print(getattr(info, "commit_url", info))
        return {"commit": str(getattr(info, "commit_url", info))}
    if args.command == "export":
        from training.export import export_onnx
        report = export_onnx(s["checkpoint"], quantize=s["quantize"])
    elif args.command == "migrate":
        from training.migrate import migrate_folder
        report = migrate_folder(s["checkpoint"])
    else:
        from training import evaluate
        run = {"evaluate": evaluate.run_evaluate, "calibrate": evaluate.run_calibrate, "report": evaluate.run_report}
        report = run[args.command](s.pop("checkpoint"), s.pop("dataset"), **s)
    print(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> dict:
    """Run one command. The project's own errors (TriptychError: bad data, settings, checkpoints...) end it
    with their message; anything else is a bug and raises with its traceback. `--debug` (or TRIPTYCH_DEBUG=1)
    shows the traceback of the project's own errors too."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("TRIPTYCH_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    args = get_args_parser().parse_args(argv)
    try:
        return run_command(args, argv)
    except TriptychError as e:
        if debug:
            raise
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: the last finished epoch is saved; run the same command with --resume to continue.")
