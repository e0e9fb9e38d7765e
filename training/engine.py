"""The one training loop, for every task: read `run` top to bottom.

`run(task, settings)` takes four steps. `set_up` loads the data (training/data.py), chooses the task's
default recipe for it (a pretrained start, resolution and schedule, for every flag not given), settles the
task's settings (fresh, `--resume`d, from an earlier checkpoint with `--init-from`, or from another
checkpoint's body with `--transfer-from`), builds the model and decodes every row once into tensors (training/cache.py):
the run's `Setup` (training/state.py). `start_training` makes the `TrainingState` that the epochs change:
the optimiser, its schedule and Lookahead around the model, restored from the resume state of a
`--resume`d run. `train_epochs` trains epoch by epoch (training/loop.py): SGD or AdamW with a warm-up +
linear-decay schedule, bf16 autocast (on CUDA, and on CPUs with bf16 units by --precision bf16), a
finite-loss check, validation accuracy / macro-F1 / per-label scores after every epoch, the best checkpoint
kept, the resume state written atomically after every epoch, early stopping, `--time-limit`, and
DistributedDataParallel when started by torchrun. A caller other than the command line follows the run and
may cancel it through `Hooks`. `finish` reloads the best epoch, chooses its "unsure" threshold, and writes
the reports and the model card. What the checkpoint records, and the --init-from and --transfer-from rules,
are in training/records.py.

Randomness is derived from (seed, epoch) at the start of every epoch, so a run resumed from the state
saved after epoch k repeats epochs k+1... exactly as the uninterrupted run does.
"""

from __future__ import annotations

import math
import time
from dataclasses import fields, replace

import torch
from torch import nn

from training import checkpoint as ckpt
from training.cache import encode_split
from training.data import Splits, load_task_splits
from training.distributed import all_reduce_sum, barrier, setup_distributed, shut_down
from training.loop import (Cancelled, Hooks, calibrate, evaluate, steps_per_epoch, to_device_cache,
                           train_one_epoch)
from training.metrics import from_confusion
from training.optim import Lookahead, class_weights, make_optimizer, make_schedule, use_bf16
from training.records import (TrainingError, check_starting_point, checkpoint_config, earlier_stages, hardware,
                              load_all_but_head, record_unsure_threshold, run_record, start_from_checkpoint,
                              transfer_from_checkpoint)
from training.reports import confusion_title, curves_title, write_reports
from training.settings import RunSettings, json_value, role_of
from training.state import Setup, TrainingState
from training.tasks import Task

__all__ = ["Cancelled", "Hooks", "TrainingError", "calibrate", "evaluate", "run", "train_one_epoch"]


def run(task: Task, settings: RunSettings, *, hooks: Hooks | None = None, splits: Splits | None = None,
        recipe: dict | None = None, validation: dict | None = None) -> dict:
    """Train `task` as `settings` say (train.output must be set); returns the best epoch's metrics,
    the history and timings (metrics.json's summary).

    `hooks` report progress to a caller and let it cancel: when `hooks.should_stop()` is True the run
    raises `Cancelled` after the current batch, and whatever it had written to train.output (task files,
    the checkpoint and resume state of finished epochs) is left there for the caller to remove.

    A K-fold cross-validation (--folds) runs through training/folds.py, whose runs are this function on
    `splits` it gives (`recipe` is then the record of the recipe already applied to `settings`);
    `validation` stands in for scoring the validation rows (the folds' scores, for the run on every row)."""
    if settings.data.folds and splits is None:
        raise TrainingError("--folds: a cross-validation runs through training.folds.cross_validate, which the "
                            "command line calls.")
    setup, model = set_up(task, settings, hooks or Hooks(), splits, recipe=recipe, validation=validation)
    state = start_training(setup, model)
    train_epochs(setup, state)
    return finish(setup, state)


def plan(task: Task, settings: RunSettings) -> dict:
    """What a run would train with (--dry-run): the data loaded and the default recipe applied, nothing
    trained: {"recipe", "train_args", "num_train", "num_validation"}."""
    splits = load_task_splits(task, settings.data, settings.task, settings.train.seed)
    settings, recipe = apply_recipe(task, splits, settings)
    if settings.data.folds:
        settings = fixed_schedule(settings)
    return {"recipe": recipe, "train_args": run_record(task, settings), "num_train": len(splits.train),
            "num_validation": len(splits.val)}


def fixed_schedule(settings: RunSettings) -> RunSettings:
    """The settings of a cross-validation's runs (--folds): each keeps its last epoch, so that no epoch is
    picked on the rows that are scored."""
    return replace(settings, train=replace(settings.train, keep="last"))


def set_up(task: Task, settings: RunSettings, hooks: Hooks, splits: Splits | None = None, *,
           recipe: dict | None = None, validation: dict | None = None) -> tuple[Setup, nn.Module]:
    """Data, settings, the model and the decoded tensors: everything but the optimiser before the first step."""
    t0 = time.perf_counter()
    check_starting_point(settings.train)
    rank, world, device = setup_distributed(settings.train.device)
    if settings.train.threads:
        torch.set_num_threads(settings.train.threads)
    if splits is None:
        splits = load_task_splits(task, settings.data, settings.task, settings.train.seed)
        settings, recipe = apply_recipe(task, splits, settings)
    setup = Setup(task, settings, rank, world, device, splits, recipe=recipe, validation=validation, hooks=hooks, t0=t0)
    if recipe:
        setup.say(f"recipe: {recipe['name']} ({recipe['reason']}); the flags you give override it, --from-scratch "
                  "turns it off")
    settle_config(setup)
    setup.say(f"{task.name}: {len(splits.train)} train / {len(splits.val)} validation rows, {len(splits.labels)} "
              f"labels, device {hardware(device, world)}")
    model = build_network(setup)   # before decoding: a missing pretrained download fails now, not after minutes of it
    source = task.pretrained_source(setup.config) if setup.fresh else None
    if source:
        setup.say(f"pretrained weights from {source['source']} (license {source.get('license', 'unknown')})")
    decode_splits(setup)
    if settings.train.class_weights:
        setup.loss_weight = class_weights(splits.train_labels, len(splits.labels)).to(device)
    return setup, model


def apply_recipe(task: Task, splits: Splits, settings: RunSettings) -> tuple[RunSettings, dict | None]:
    """(settings, the recipe's record for config.json): the task's default recipe for this data (Task.recipe:
    a pretrained start, a resolution, a schedule) in every setting the user did not give; none with
    --from-scratch, for a run continuing a checkpoint (--init-from), or for settings built in code
    (RunSettings.given None). A checkpoint given with --transfer-from defines the network: the recipe then
    sets none of its network settings."""
    given = settings.given
    if given is None or settings.train.from_scratch or settings.train.init_from is not None:
        return settings, None
    recipe = task.recipe(splits, settings)
    if recipe is None:
        return settings, None
    network = {f.name for f in fields(settings.task) if role_of(f) == "network"}
    task_values = {k: v for k, v in recipe.task.items()
                   if k not in given and not ("transfer_from" in given and k in network)}
    train_values = {k: v for k, v in recipe.train.items() if k not in given}
    settings = replace(settings, task=task.check(replace(settings.task, **task_values)),
                       train=replace(settings.train, **train_values))
    return settings, {"name": recipe.name, "reason": recipe.reason,
                      "settings": {k: json_value(v) for k, v in {**task_values, **train_values}.items()}}


def settle_config(setup: Setup) -> None:
    """The task settings this run trains with: those saved for --resume, else this run's (from the
    --init-from or --transfer-from checkpoint where given), fitted to the training split; task files
    written beside."""
    task, out, train = setup.task, setup.out, setup.settings.train
    if setup.main:
        ckpt.remove_stale_temporaries(out)   # from a save that was killed half-way
    setup.resume = ckpt.load_resume(out) if train.resume else None
    if setup.resume is not None:
        saved = setup.resume
        setup.config = task.config_from_dict(saved["task_config"])
        setup.parent, setup.transferred = saved.get("parent"), saved.get("transferred")
        setup.stages, setup.recipe = list(saved.get("stages") or []), saved.get("recipe")
        task.load_extra(setup.config, out)
        return
    config = setup.settings.task
    if train.init_from is not None:
        config, setup.parent = start_from_checkpoint(task, setup.settings, train.init_from, setup.splits.labels)
        setup.stages = earlier_stages(train.init_from)
    elif train.transfer_from is not None:
        config, setup.transferred = transfer_from_checkpoint(task, setup.settings, train.transfer_from)
        setup.say(f"transfer learning from {train.transfer_from}: its {len(setup.transferred['labels'])} labels' "
                  f"classifier head is left out, a new one learns {len(setup.splits.labels)}")
    setup.config = task.fit(config, setup.splits.train[setup.splits.input_column])
    if setup.main:
        task.save_extra(setup.config, out)


def build_network(setup: Setup) -> nn.Module:
    train = setup.settings.train
    torch.manual_seed(train.seed)
    model = setup.task.build_model(setup.config, len(setup.splits.labels), pretrained=setup.fresh)
    if setup.resume is None and train.init_from is not None:
        model.load_state_dict(ckpt.read_weights(train.init_from))
    elif setup.resume is None and train.transfer_from is not None:
        load_all_but_head(setup.task, model, train.transfer_from)
    return model.to(setup.device)


def decode_splits(setup: Setup) -> None:
    """Every row decoded once, through the task's `encode`. Rank 0 decodes first and fills the disk
    cache; the other ranks then read it."""
    data = setup.settings.data
    if not setup.main:
        barrier()
    for name in ("train", "val"):
        rows = getattr(setup.splits, name)
        if len(rows) == 0:   # the run on every row of a cross-validation has no validation rows
            setattr(setup, f"{name}_x", torch.zeros(0))
            setattr(setup, f"{name}_len", torch.zeros(0, dtype=torch.long))
            continue
        x, lengths = encode_split(setup.task, setup.config, rows, setup.splits.input_column,
                                  workers=data.workers, desc=f"decode {'train' if name == 'train' else 'validation'}",
                                  show_progress=setup.show, use_cache=not data.no_cache)
        setattr(setup, f"{name}_x", to_device_cache(x, setup.device))
        setattr(setup, f"{name}_len", lengths)
    if setup.main:
        barrier()


def start_training(setup: Setup, model: nn.Module) -> TrainingState:
    """Data-dependent initialisation, memory format, DDP, optimiser, schedule and Lookahead around `model`;
    on --resume, everything the resume state saved after the last finished epoch."""
    train = setup.settings.train
    if setup.fresh:
        setup.task.init_from_data(model, setup.config, setup.train_x)   # e.g. airbench's whitening; a checkpoint holds it
    if setup.task.channels_last(setup.config, setup.device, use_bf16(train.precision, setup.device)):
        model = model.to(memory_format=torch.channels_last)
    head = split_head(setup, model)
    optimizer = make_optimizer(model, train, head)
    steps = steps_per_epoch(math.ceil(len(setup.splits.train_labels) / setup.world), train.batch_size)  # as shard() pads
    state = TrainingState(model, nn.parallel.DistributedDataParallel(model) if setup.world > 1 else model, optimizer,
                          make_schedule(optimizer, steps * train.epochs, train.warmup_fraction),
                          Lookahead(model, steps * train.epochs) if train.lookahead else None)
    if setup.resume is not None:
        state.restore(setup.resume)
        setup.say(f"resuming after epoch {state.epoch} from {setup.out / ckpt.RESUME_NAME}")
    setup.first_step_s = time.perf_counter() - setup.t0
    return state


def split_head(setup: Setup, model: nn.Module) -> nn.Module | None:
    """The classifier head, where --freeze-backbone or --backbone-lr-scale treat it apart from the body."""
    train = setup.settings.train
    if not train.freeze_backbone and train.backbone_lr_scale == 1.0:
        return None
    head = setup.task.head(model)
    if head is None:
        raise TrainingError(f"--freeze-backbone / --backbone-lr-scale: the {setup.task.name} task does not say which "
                            "part of its model is the classifier head.")
    if train.freeze_backbone:
        in_head = {id(p) for p in head.parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) in in_head)
        setup.head_only = head
    return head


def train_epochs(setup: Setup, state: TrainingState) -> None:
    from tqdm.auto import tqdm

    train = setup.settings.train
    bar = tqdm(range(state.epoch, train.epochs), desc="epochs", unit="epoch", disable=not setup.show,
               initial=state.epoch, total=train.epochs, dynamic_ncols=True)
    for epoch in bar:
        stats = train_one_epoch(setup, state, epoch=epoch)
        if state.lookahead is not None and epoch == train.epochs - 1:
            state.lookahead.finish(state.model)
        scores = validate(setup, state, epoch, stats)
        bar.set_postfix(val_acc=f"{scores['accuracy']:.4f}", kept=f"{state.best['accuracy']:.4f}")
        if setup.main and setup.hooks.on_epoch is not None:
            setup.hooks.on_epoch(dict(state.history[-1]))
        if train.patience and state.stale >= train.patience:
            setup.say(f"early stop: no better validation accuracy for {state.stale} epochs")
            break
        if out_of_time(setup) and epoch < train.epochs - 1:
            state.stopped = "time limit"
            setup.say(f"time limit: {time.perf_counter() - setup.t0:.1f} s passed --time-limit {train.time_limit:g} "
                      f"after epoch {epoch + 1} of {train.epochs}; the best epoch so far is the checkpoint")
            break
    barrier()


def out_of_time(setup: Setup) -> bool:
    """Whether the run has passed --time-limit (since set_up), on any rank: every rank stops together."""
    if not setup.settings.train.time_limit:
        return False
    over = torch.tensor(float(time.perf_counter() - setup.t0 > setup.settings.train.time_limit), device=setup.device)
    return bool(all_reduce_sum(over) > 0)


def validate(setup: Setup, state: TrainingState, epoch: int, stats: dict) -> dict:
    """Score the epoch on the validation rows; keep the checkpoint if it is the best so far (--keep best)
    or in any case (--keep last), and the resume state in any case."""
    row = {"epoch": epoch + 1, "train_loss": round(stats["train_loss"], 5)}
    if setup.validation is not None:   # every row trains this run: its validation is the folds'
        scores, cm, val_loss = setup.validation["scores"], torch.tensor(setup.validation["confusion"]), None
    else:
        cm, val_loss, by_dataset = evaluate_by_dataset(setup, state.model)
        scores = {**from_confusion(cm, setup.splits.labels), **({"by_dataset": by_dataset} if by_dataset else {})}
        row.update(val_loss=round(val_loss, 5), val_accuracy=round(scores["accuracy"], 5),
                   val_macro_f1=round(scores["macro_f1"], 5))
    state.history.append({**row, "samples_per_s": round(stats["samples_per_s"], 1),
                          "seconds": round(stats["train_seconds"], 2)})
    best = state.best
    # Ties (common on a validation set of a few examples) go to the lower validation loss.
    improved = (setup.settings.train.keep == "last" or val_loss is None or best is None
                or (scores["accuracy"], -round(val_loss, 5)) > (best["accuracy"], -best.get("val_loss", 0.0)))
    state.stale, state.epoch = 0 if improved else state.stale + 1, epoch + 1
    if improved:
        state.best = {**scores, "epoch": epoch + 1, "confusion": cm.tolist(),
                      **({"val_loss": round(val_loss, 5)} if val_loss is not None else {})}
    if setup.main:
        if improved:
            ckpt.save_checkpoint(setup.out, state.model, checkpoint_config(
                setup.task, setup.config, setup.settings, setup.splits, state.best,
                hardware=hardware(setup.device, setup.world), seconds=time.perf_counter() - setup.t0,
                parent=setup.parent, transferred=setup.transferred, recipe=setup.recipe))
        state.save(setup)
    return scores


def evaluate_by_dataset(setup: Setup, model: nn.Module) -> tuple[torch.Tensor, float, dict]:
    """(confusion matrix, mean loss) on the validation rows, and on a run of several datasets each one's
    accuracy on its own rows ({dataset: {accuracy, num_examples}}; else {})."""
    splits, train = setup.splits, setup.settings.train
    sources = splits.info.get("sources") or [{"val_rows": [0, len(splits.val_labels)]}]
    cm, loss_sum, by_dataset = 0, 0.0, {}
    for source in sources:
        start, stop = source["val_rows"]
        if stop == start:
            continue
        part, loss = evaluate(model, setup.task, setup.config, setup.val_x[start:stop], setup.val_len[start:stop],
                              splits.val_labels[start:stop], len(splits.labels), batch_size=setup.eval_batch_size,
                              device=setup.device, rank=setup.rank, world=setup.world, precision=train.precision)
        cm, loss_sum = cm + part, loss_sum + loss * (stop - start)
        if "id" in source:
            by_dataset[source["id"]] = {"accuracy": round(from_confusion(part, splits.labels)["accuracy"], 5),
                                        "num_examples": stop - start}
    return cm, loss_sum / max(1, len(splits.val_labels)), by_dataset


def finish(setup: Setup, state: TrainingState) -> dict:
    """The best epoch's weights back in the model, its unsure threshold, reports and model card."""
    best = state.best
    result = {k: v for k, v in best.items() if k != "confusion"}
    summary = {"best": result, "history": state.history, "stages": setup.stages, "confusion": best["confusion"],
               "seconds_to_first_step": round(setup.first_step_s, 2),
               "total_seconds": round(time.perf_counter() - setup.t0, 2),
               "hardware": hardware(setup.device, setup.world), **({"stopped": state.stopped} if state.stopped else {})}
    if setup.main:
        from training.card import write_model_card

        out, splits = setup.out, setup.splits
        state.model.load_state_dict(ckpt.read_weights(out))    # the best epoch's weights, as shipped
        summary["best"]["unsure"] = setup.validation["unsure"] if setup.validation is not None else calibrate(
            state.model, setup.task, setup.config, setup.val_x, setup.val_len, splits.val_labels,
            batch_size=setup.eval_batch_size, device=setup.device)
        record_unsure_threshold(out, summary["best"]["unsure"])
        write_reports(out, summary, torch.tensor(best["confusion"]), splits.labels, state.history, stages=setup.stages,
                      train_args=run_record(setup.task, setup.settings), title=curves_title(out.name, splits.info),
                      confusion_title=confusion_title(out.name, splits.info))
        write_model_card(out)   # README.md: the folder is a Hub model repository as it stands
        which = "cross-validated" if setup.validation is not None else "best validation"
        setup.say(f"{which} accuracy {result['accuracy']:.4f} (macro-F1 {result['macro_f1']:.4f}), the checkpoint "
                  f"at epoch {result['epoch']}, in {out}")
    shut_down(setup.world)
    return summary
