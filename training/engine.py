"""The one training loop, for every task: read `run` top to bottom.

`run(task, settings)` takes four steps. `set_up` loads the data (training/data.py), settles the task's
settings (fresh, `--resume`d, from an earlier checkpoint with `--init-from`, or from another checkpoint's
body with `--transfer-from`), builds the model, decodes every row once into tensors (training/cache.py)
and makes the optimiser. `restore` continues a resumed run. `train_epochs` trains epoch by epoch: SGD or
AdamW with a warm-up + linear-decay schedule (optionally airbench's Lookahead), bf16 autocast (on CUDA,
and on CPUs with bf16 units by --precision bf16), a finite-loss check, validation accuracy / macro-F1 /
per-label scores after every epoch, the best checkpoint kept, resume state written atomically after every
epoch, early stopping, `--time-limit`, and DistributedDataParallel when started by torchrun. A caller
other than the command line follows the run and may cancel it through `Hooks`. `finish` reloads the best
epoch, chooses its "unsure" threshold, and writes the reports and the model card. What the checkpoint records, and the --init-from
and --transfer-from rules, are in training/records.py.

Randomness is derived from (seed, epoch) at the start of every epoch, so a run resumed from the state
saved after epoch k repeats epochs k+1... exactly as the uninterrupted run does.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from training import checkpoint as ckpt
from training.cache import encode_split
from training.data import Splits, load_task_splits
from training.distributed import all_reduce_sum, barrier, setup_distributed, shard, shut_down
from training.metrics import confusion_matrix, from_confusion, unsure_threshold
from training.optim import Lookahead, class_weights, make_optimizer, make_schedule, use_bf16
from training.records import (TrainingError, check_starting_point, checkpoint_config, earlier_stages, hardware,
                              load_all_but_head, record_unsure_threshold, run_record, start_from_checkpoint,
                              transfer_from_checkpoint)
from training.reports import confusion_title, curves_title, write_reports
from training.settings import RunSettings
from training.tasks import Task

__all__ = ["Cancelled", "Hooks", "TrainingError", "calibrate", "evaluate", "run", "train_one_epoch"]


class Cancelled(TrainingError):
    """The caller's `Hooks.should_stop` asked the run to stop."""


@dataclass
class Hooks:
    """How a caller other than the command line (the demo's Teach tab) follows a run and stops it.

    on_step      (epoch index, step, steps per epoch, running train loss) after each training batch, on
                 rank 0: `step` counts the epoch's batches done, 1 to `steps`; the loss is the mean over
                 them (rank 0's rows)
    on_epoch     the epoch's history row (the dict appended to metrics.json's history) after validation,
                 on rank 0
    should_stop  asked after every training batch, on every rank (which must agree): True raises
                 `Cancelled` at once
    """
    on_step: Callable[[int, int, int, float], None] | None = None
    on_epoch: Callable[[dict], None] | None = None
    should_stop: Callable[[], bool] | None = None


# ---------------------------------------------------------------------------------------------- epochs

def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    torch.manual_seed(seed * 1_000_003 + epoch)   # dropout and any op using the global RNG
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def balanced_order(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """An epoch of as many rows as `labels` has, drawn with replacement so that every label present is
    drawn equally often on average (--balanced-sampling)."""
    counts = torch.bincount(labels).double()
    return torch.multinomial(1.0 / counts[labels], len(labels), replacement=True, generator=g)


def steps_per_epoch(rows: int, batch_size: int) -> int:
    """Full batches in an epoch of `rows`: the ragged last batch is dropped (BatchNorm needs more than one
    row); a split smaller than one batch is a single batch."""
    return rows // batch_size if rows > batch_size else 1


def train_one_epoch(model, task, config, data, lengths, labels, optimizer, scheduler, *, train, epoch: int,
                    device, rank: int, world: int, loss_weight=None, show_progress=True, lookahead=None,
                    head_only: nn.Module | None = None, hooks: Hooks | None = None) -> dict:
    from tqdm.auto import tqdm

    model.train()
    if head_only is not None:   # --freeze-backbone: the body keeps its BatchNorm statistics, no dropout
        model.eval()
        head_only.train()
    g = epoch_generator(train.seed, epoch)
    order = shard(balanced_order(labels, g) if train.balanced_sampling else torch.randperm(len(labels), generator=g),
                  rank, world)
    bs = train.batch_size
    steps = steps_per_epoch(len(order), bs)
    use_amp = use_bf16(train.precision, device)
    total_loss = torch.zeros((), device=device)
    seen, start = 0, time.perf_counter()
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{train.epochs}", unit="batch", leave=False,
               disable=not show_progress, dynamic_ncols=True)
    for step in bar:
        idx = order[step * bs:(step + 1) * bs]
        x = data[idx].to(device, non_blocking=True) if data.device != device else data[idx.to(device)]
        inputs = task.make_batch(config, x, lengths[idx].to(device), train=True, generator=g)
        y = labels[idx].to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(*inputs)
        loss = F.cross_entropy(logits.float(), y, weight=loss_weight, label_smoothing=train.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        scheduler.step()
        if lookahead is not None:
            lookahead.step(getattr(model, "module", model), epoch * steps + step + 1)
        total_loss += loss.detach() * len(idx)
        seen += len(idx)
        if step % 10 == 0 or step == steps - 1:   # one sync every 10 steps
            running = finite_loss(total_loss, seen, world, epoch=epoch, step=step)
            bar.set_postfix(loss=f"{running:.4f}", samples_s=f"{seen * world / (time.perf_counter() - start):.0f}")
        if hooks is not None:
            after_step(hooks, rank, epoch, step, steps, total_loss, seen)
    totals = all_reduce_sum(torch.stack([total_loss.float(), torch.tensor(float(seen), device=device)]))
    return {"train_loss": float(totals[0] / totals[1]), "train_seconds": time.perf_counter() - start,
            "samples_per_s": float(totals[1]) / (time.perf_counter() - start)}


def finite_loss(total_loss: torch.Tensor, seen: int, world: int, *, epoch: int, step: int) -> float:
    """The running training loss over every rank; a TrainingError when it is not finite. One sync, summed
    over ranks, so every rank sees a NaN on any rank and all stop together instead of the others waiting
    for it in the next gradient exchange."""
    running = float(all_reduce_sum(total_loss.clone())) / max(1, seen * world)
    if not math.isfinite(running):
        kept = ("The last good checkpoint and resume state are kept" if epoch > 0
                else "No epoch finished, so nothing was saved")
        raise TrainingError(f"the training loss became {running} at epoch {epoch + 1}, step {step + 1}. "
                            f"{kept}; try a lower --lr.")
    return running


def after_step(hooks: Hooks, rank: int, epoch: int, step: int, steps: int, total_loss: torch.Tensor,
               seen: int) -> None:
    """The caller's hooks after a training batch: its progress (rank 0), then whether to stop."""
    if hooks.on_step is not None and rank == 0:
        hooks.on_step(epoch, step + 1, steps, float(total_loss) / max(1, seen))
    if hooks.should_stop is not None and hooks.should_stop():
        raise Cancelled("training was cancelled")


def eval_logits(model, task, config, data, lengths, labels, *, batch_size: int, device, rank: int = 0,
                world: int = 1, precision: str = "auto"):
    """Yield (logits, targets) batch by batch over this rank's share of the rows, in eval mode."""
    model.eval()
    order = torch.arange(len(labels))[rank::world]
    use_amp = use_bf16(precision, device)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x = data[idx].to(device, non_blocking=True) if data.device != device else data[idx.to(device)]
        inputs = task.make_batch(config, x, lengths[idx].to(device), train=False)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(*inputs).float()
        yield logits, labels[idx].to(device)


@torch.inference_mode()
def evaluate(model, task, config, data, lengths, labels, num_labels: int, *, batch_size: int, device,
             rank: int = 0, world: int = 1, precision: str = "auto") -> tuple[torch.Tensor, float]:
    """(confusion matrix, mean loss) over every row, sharded across ranks and summed."""
    cm = torch.zeros(num_labels, num_labels, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), device=device)
    for logits, y in eval_logits(model, task, config, data, lengths, labels, batch_size=batch_size, device=device,
                                 rank=rank, world=world, precision=precision):
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        cm += confusion_matrix(logits.argmax(1), y, num_labels)
    all_reduce_sum(cm)
    all_reduce_sum(loss_sum)
    return cm.cpu(), float(loss_sum) / max(1, int(cm.sum()))


@torch.inference_mode()
def calibrate(model, task, config, data, lengths, labels, *, batch_size: int, device) -> dict:
    """The "unsure" threshold of `model` on these (validation) rows: see metrics.unsure_threshold."""
    confidence, correct = [], []
    for logits, y in eval_logits(model, task, config, data, lengths, labels, batch_size=batch_size, device=device):
        top, pred = torch.softmax(logits, 1).max(1)
        confidence.append(top.cpu())
        correct.append((pred == y).cpu())
    return unsure_threshold(torch.cat(confidence), torch.cat(correct))


def to_device_cache(data: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Keep the decoded epoch on the GPU when it fits in a quarter of free memory, else pinned in RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if data.numel() * data.element_size() < free // 4:
            return data.to(device)
        return data.pin_memory()
    return data


# ------------------------------------------------------------------------------------------------- run

@dataclass
class Run:
    """What the steps of one training run share."""
    task: Task
    settings: RunSettings
    rank: int
    world: int
    device: torch.device
    splits: Splits
    config: object = None            # the task's settings, as trained (fitted, or from --init-from / --resume)
    parent: dict | None = None       # --init-from: what the starting checkpoint recorded
    transferred: dict | None = None  # --transfer-from: config.json's transferred_from
    stages: list = field(default_factory=list)   # --init-from: the earlier runs' epochs, for metrics.json
    resume: dict | None = None
    model: nn.Module | None = None
    net: nn.Module | None = None     # the model, wrapped for DistributedDataParallel when world > 1
    train_x: torch.Tensor | None = None
    train_len: torch.Tensor | None = None
    val_x: torch.Tensor | None = None
    val_len: torch.Tensor | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: object = None
    lookahead: Lookahead | None = None
    loss_weight: torch.Tensor | None = None
    head_only: nn.Module | None = None   # --freeze-backbone: the one part that trains
    start_epoch: int = 0
    history: list = field(default_factory=list)
    best: dict | None = None
    stale: int = 0
    stopped: str | None = None       # why training ended before --epochs: "time limit"
    hooks: Hooks = field(default_factory=Hooks)
    t0: float = field(default_factory=time.perf_counter)
    first_step_s: float = 0.0

    @property
    def out(self) -> Path:
        return Path(self.settings.train.output)

    @property
    def fresh(self) -> bool:
        """A new network (pretrained weights where the task's settings ask for them), not one from a
        checkpoint or a resume state."""
        train = self.settings.train
        return self.resume is None and train.init_from is None and train.transfer_from is None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def show(self) -> bool:
        return self.main and not self.settings.train.quiet

    @property
    def eval_batch_size(self) -> int:
        return self.settings.train.eval_batch_size or 2 * self.settings.train.batch_size

    def say(self, message: str) -> None:
        if self.show:
            print(f"[triptych] {message}", file=sys.stderr)


def run(task: Task, settings: RunSettings, *, hooks: Hooks | None = None) -> dict:
    """Train `task` as `settings` say (train.output must be set); returns the best epoch's metrics,
    the history and timings (metrics.json's summary).

    `hooks` report progress to a caller and let it cancel: when `hooks.should_stop()` is True the run
    raises `Cancelled` after the current batch, and whatever it had written to train.output (task files,
    the checkpoint and resume state of finished epochs) is left there for the caller to remove."""
    r = set_up(task, settings)
    r.hooks = hooks or Hooks()
    restore(r)
    train_epochs(r)
    return finish(r)


def set_up(task: Task, settings: RunSettings) -> Run:
    """Data, settings, model, decoded tensors and optimiser: everything before the first step."""
    t0 = time.perf_counter()
    check_starting_point(settings.train)
    rank, world, device = setup_distributed(settings.train.device)
    if settings.train.threads:
        torch.set_num_threads(settings.train.threads)
    splits = load_task_splits(task, settings.data, settings.task, settings.train.seed)
    r = Run(task, settings, rank, world, device, splits, t0=t0)
    settle_config(r)
    r.say(f"{task.name}: {len(splits.train)} train / {len(splits.val)} validation rows, {len(splits.labels)} "
          f"labels, device {hardware(device, world)}")
    build_network(r)   # before decoding: a missing pretrained download fails now, not after minutes of it
    source = task.pretrained_source(r.config) if r.fresh else None
    if source:
        r.say(f"pretrained weights from {source['source']} (license {source.get('license', 'unknown')})")
    decode_splits(r)
    make_training(r)
    return r


def settle_config(r: Run) -> None:
    """The task settings this run trains with: those saved for --resume, else this run's (from the
    --init-from or --transfer-from checkpoint where given), fitted to the training split; task files
    written beside."""
    task, out = r.task, r.out
    if r.main:
        ckpt.remove_stale_temporaries(out)   # from a save that was killed half-way
    r.resume = ckpt.load_resume(out) if r.settings.train.resume else None
    if r.resume is not None:
        r.config = task.config_from_dict(r.resume["task_config"])
        task.load_extra(r.config, out)
        return
    config = r.settings.task
    if r.settings.train.init_from is not None:
        config, r.parent = start_from_checkpoint(task, r.settings, r.settings.train.init_from, r.splits.labels)
        r.stages = earlier_stages(r.settings.train.init_from)
    elif r.settings.train.transfer_from is not None:
        config, r.transferred = transfer_from_checkpoint(task, r.settings, r.settings.train.transfer_from)
        r.say(f"transfer learning from {r.settings.train.transfer_from}: its {len(r.transferred['labels'])} "
              f"labels' classifier head is left out, a new one learns {len(r.splits.labels)}")
    r.config = task.fit(config, r.splits.train[r.splits.input_column])
    if r.main:
        task.save_extra(r.config, out)


def build_network(r: Run) -> None:
    torch.manual_seed(r.settings.train.seed)
    r.model = r.task.build_model(r.config, len(r.splits.labels), pretrained=r.fresh)
    if r.resume is None and r.settings.train.init_from is not None:
        r.model.load_state_dict(ckpt.read_weights(r.settings.train.init_from))
    elif r.resume is None and r.settings.train.transfer_from is not None:
        load_all_but_head(r.task, r.model, r.settings.train.transfer_from)
    r.model.to(r.device)


def decode_splits(r: Run) -> None:
    """Every row decoded once, through the task's `encode`. Rank 0 decodes first and fills the disk
    cache; the other ranks then read it."""
    data = r.settings.data
    if not r.main:
        barrier()
    for name in ("train", "val"):
        x, lengths = encode_split(r.task, r.config, getattr(r.splits, name), r.splits.input_column,
                                  workers=data.workers, desc=f"decode {'train' if name == 'train' else 'validation'}",
                                  show_progress=r.show, use_cache=not data.no_cache)
        setattr(r, f"{name}_x", to_device_cache(x, r.device))
        setattr(r, f"{name}_len", lengths)
    if r.main:
        barrier()


def make_training(r: Run) -> None:
    """Data-dependent initialisation, memory format, DDP, optimiser, schedule, Lookahead, loss weights."""
    train = r.settings.train
    if r.fresh:
        r.task.init_from_data(r.model, r.config, r.train_x)   # e.g. airbench's whitening; a checkpoint holds it
    if r.task.channels_last(r.config, r.device, use_bf16(train.precision, r.device)):
        r.model = r.model.to(memory_format=torch.channels_last)
    head = split_head(r)
    r.net = nn.parallel.DistributedDataParallel(r.model) if r.world > 1 else r.model
    r.optimizer = make_optimizer(r.model, train, head)
    steps = steps_per_epoch(math.ceil(len(r.splits.train_labels) / r.world), train.batch_size)   # as shard() pads
    r.scheduler = make_schedule(r.optimizer, steps * train.epochs, train.warmup_fraction)
    r.lookahead = Lookahead(r.model, steps * train.epochs) if train.lookahead else None
    if train.class_weights:
        r.loss_weight = class_weights(r.splits.train_labels, len(r.splits.labels)).to(r.device)


def split_head(r: Run) -> nn.Module | None:
    """The classifier head, where --freeze-backbone or --backbone-lr-scale treat it apart from the body."""
    train = r.settings.train
    if not train.freeze_backbone and train.backbone_lr_scale == 1.0:
        return None
    head = r.task.head(r.model)
    if head is None:
        raise TrainingError(f"--freeze-backbone / --backbone-lr-scale: the {r.task.name} task does not say which "
                            "part of its model is the classifier head.")
    if train.freeze_backbone:
        in_head = {id(p) for p in head.parameters()}
        for p in r.model.parameters():
            p.requires_grad_(id(p) in in_head)
        r.head_only = head
    return head


def restore(r: Run) -> None:
    """--resume: the weights, optimiser, schedule, Lookahead and history saved after the last epoch."""
    if r.resume is not None:
        state = r.resume
        r.model.load_state_dict(state["model"])
        r.optimizer.load_state_dict(state["optimizer"])
        r.scheduler.load_state_dict(state["scheduler"])
        if r.lookahead is not None and state.get("lookahead") is not None:
            r.lookahead.load_state_dict(state["lookahead"])
        r.start_epoch, r.history, r.stale = int(state["epoch"]), list(state["history"]), int(state["stale"])
        r.parent, r.best, r.stages = state.get("parent"), state.get("best"), list(state.get("stages") or [])
        r.transferred = state.get("transferred")
        r.say(f"resuming after epoch {r.start_epoch} from {r.out / ckpt.RESUME_NAME}")
    r.first_step_s = time.perf_counter() - r.t0


def train_epochs(r: Run) -> None:
    from tqdm.auto import tqdm

    train = r.settings.train
    bar = tqdm(range(r.start_epoch, train.epochs), desc="epochs", unit="epoch", disable=not r.show,
               initial=r.start_epoch, total=train.epochs, dynamic_ncols=True)
    for epoch in bar:
        stats = train_one_epoch(r.net, r.task, r.config, r.train_x, r.train_len, r.splits.train_labels,
                                r.optimizer, r.scheduler, train=train, epoch=epoch, device=r.device, rank=r.rank,
                                world=r.world, loss_weight=r.loss_weight, show_progress=r.show,
                                lookahead=r.lookahead, head_only=r.head_only, hooks=r.hooks)
        if r.lookahead is not None and epoch == train.epochs - 1:
            r.lookahead.finish(r.model)
        scores = validate(r, epoch, stats)
        bar.set_postfix(val_acc=f"{scores['accuracy']:.4f}", best=f"{r.best['accuracy']:.4f}")
        if r.main and r.hooks.on_epoch is not None:
            r.hooks.on_epoch(dict(r.history[-1]))
        if train.patience and r.stale >= train.patience:
            r.say(f"early stop: no better validation accuracy for {r.stale} epochs")
            break
        if out_of_time(r) and epoch < train.epochs - 1:
            r.stopped = "time limit"
            r.say(f"time limit: {time.perf_counter() - r.t0:.1f} s passed --time-limit {train.time_limit:g} after "
                  f"epoch {epoch + 1} of {train.epochs}; the best epoch so far is the checkpoint")
            break
    barrier()


def out_of_time(r: Run) -> bool:
    """Whether the run has passed --time-limit (since set_up), on any rank: every rank stops together."""
    if not r.settings.train.time_limit:
        return False
    over = torch.tensor(float(time.perf_counter() - r.t0 > r.settings.train.time_limit), device=r.device)
    return bool(all_reduce_sum(over) > 0)


def validate(r: Run, epoch: int, stats: dict) -> dict:
    """Score the epoch on the validation rows; keep the checkpoint if it is the best so far, and the
    resume state in any case."""
    cm, val_loss, by_dataset = evaluate_by_dataset(r)
    scores = from_confusion(cm, r.splits.labels)
    r.history.append({"epoch": epoch + 1, "train_loss": round(stats["train_loss"], 5), "val_loss": round(val_loss, 5),
                      "val_accuracy": round(scores["accuracy"], 5), "val_macro_f1": round(scores["macro_f1"], 5),
                      "samples_per_s": round(stats["samples_per_s"], 1), "seconds": round(stats["train_seconds"], 2)})
    # Ties (common on a validation set of a few examples) go to the lower validation loss.
    improved = r.best is None or (scores["accuracy"], -round(val_loss, 5)) > (r.best["accuracy"], -r.best.get("val_loss", 0.0))
    r.stale = 0 if improved else r.stale + 1
    if improved:
        r.best = {**scores, "epoch": epoch + 1, "val_loss": round(val_loss, 5), "confusion": cm.tolist(),
                  **({"by_dataset": by_dataset} if by_dataset else {})}
    if r.main:
        if improved:
            ckpt.save_checkpoint(r.out, r.model, checkpoint_config(
                r.task, r.config, r.settings, r.splits, r.best, hardware=hardware(r.device, r.world),
                seconds=time.perf_counter() - r.t0, parent=r.parent, transferred=r.transferred))
        ckpt.save_resume(r.out, {"model": {k: v.cpu() for k, v in r.model.state_dict().items()},
                                 "optimizer": r.optimizer.state_dict(), "scheduler": r.scheduler.state_dict(),
                                 "epoch": epoch + 1, "history": r.history, "best": r.best, "stale": r.stale,
                                 "task_config": r.task.config_to_dict(r.config), "parent": r.parent,
                                 "stages": r.stages, "transferred": r.transferred,
                                 "lookahead": r.lookahead.state_dict() if r.lookahead is not None else None})
    return scores


def evaluate_by_dataset(r: Run) -> tuple[torch.Tensor, float, dict]:
    """(confusion matrix, mean loss) on the validation rows, and on a run of several datasets each one's
    accuracy on its own rows ({dataset: {accuracy, num_examples}}; else {})."""
    sources = r.splits.info.get("sources") or [{"val_rows": [0, len(r.splits.val_labels)]}]
    cm, loss_sum, by_dataset = 0, 0.0, {}
    for source in sources:
        start, stop = source["val_rows"]
        if stop == start:
            continue
        part, loss = evaluate(r.model, r.task, r.config, r.val_x[start:stop], r.val_len[start:stop],
                              r.splits.val_labels[start:stop], len(r.splits.labels), batch_size=r.eval_batch_size,
                              device=r.device, rank=r.rank, world=r.world, precision=r.settings.train.precision)
        cm, loss_sum = cm + part, loss_sum + loss * (stop - start)
        if "id" in source:
            by_dataset[source["id"]] = {"accuracy": round(from_confusion(part, r.splits.labels)["accuracy"], 5),
                                        "num_examples": stop - start}
    return cm, loss_sum / max(1, len(r.splits.val_labels)), by_dataset


def finish(r: Run) -> dict:
    """The best epoch's weights back in the model, its unsure threshold, reports and model card."""
    result = {k: v for k, v in r.best.items() if k != "confusion"}
    summary = {"best": result, "history": r.history, "stages": r.stages, "confusion": r.best["confusion"],
               "seconds_to_first_step": round(r.first_step_s, 2), "total_seconds": round(time.perf_counter() - r.t0, 2),
               "hardware": hardware(r.device, r.world), **({"stopped": r.stopped} if r.stopped else {})}
    if r.main:
        from training.card import write_model_card

        r.model.load_state_dict(ckpt.read_weights(r.out))    # the best epoch's weights, as shipped
        summary["best"]["unsure"] = calibrate(r.model, r.task, r.config, r.val_x, r.val_len, r.splits.val_labels,
                                              batch_size=r.eval_batch_size, device=r.device)
        record_unsure_threshold(r.out, summary["best"]["unsure"])
        write_reports(r.out, summary, torch.tensor(r.best["confusion"]), r.splits.labels, r.history, stages=r.stages,
                      train_args=run_record(r.task, r.settings), title=curves_title(r.out.name, r.splits.info),
                      confusion_title=confusion_title(r.out.name, r.splits.info))
        write_model_card(r.out)   # README.md: the folder is a Hub model repository as it stands
        r.say(f"best validation accuracy {result['accuracy']:.4f} (macro-F1 {result['macro_f1']:.4f}) at epoch "
              f"{result['epoch']}; checkpoint in {r.out}")
    shut_down(r.world)
    return summary
