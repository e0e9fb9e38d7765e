"""The steps the engine repeats: one epoch of training, and one pass of evaluation, for every task.

`train_one_epoch` runs the epoch's batches of a run's `Setup` on its `TrainingState` (training/state.py):
the batch order from (seed, epoch), the task's `make_batch` on the training device, bf16 autocast where
asked, the optimiser, schedule and Lookahead steps, a finite-loss check, and the caller's `Hooks`.
`evaluate` and `calibrate` score decoded rows in eval mode; `training.evaluate` (the `evaluate` and
`calibrate` commands) and the engine's validation call the same functions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from training.checkpoint import unwrap
from training.distributed import all_reduce_sum, shard
from training.metrics import confusion_matrix, unsure_threshold
from training.optim import use_bf16
from training.records import TrainingError


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


def rows_on(device: torch.device, data: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows `idx` of a decoded split, on the training device (the split is there already when it fits)."""
    return data[idx].to(device, non_blocking=True) if data.device != device else data[idx.to(device)]


def train_one_epoch(setup, state, *, epoch: int) -> dict:
    """One pass over a shuffled (or --balanced-sampling) epoch of the training rows: {train_loss,
    train_seconds, samples_per_s}, summed over ranks."""
    from tqdm.auto import tqdm

    train, device, labels = setup.settings.train, setup.device, setup.splits.train_labels
    state.net.train()
    if setup.head_only is not None:   # --freeze-backbone: the body keeps its BatchNorm statistics, no dropout
        state.net.eval()
        setup.head_only.train()
    g = epoch_generator(train.seed, epoch)
    order = shard(balanced_order(labels, g) if train.balanced_sampling else torch.randperm(len(labels), generator=g),
                  setup.rank, setup.world)
    bs, use_amp = train.batch_size, use_bf16(train.precision, device)
    steps = steps_per_epoch(len(order), bs)
    total_loss, seen, start = torch.zeros((), device=device), 0, time.perf_counter()
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{train.epochs}", unit="batch", leave=False,
               disable=not setup.show, dynamic_ncols=True)
    for step in bar:
        idx = order[step * bs:(step + 1) * bs]
        inputs = setup.task.make_batch(setup.config, rows_on(device, setup.train_x, idx), setup.train_len[idx].to(device),
                                       train=True, generator=g)
        y = labels[idx].to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = state.net(*inputs)
        loss = F.cross_entropy(logits.float(), y, weight=setup.loss_weight, label_smoothing=train.label_smoothing)
        optimizer_step(state, loss, train.grad_clip, epoch * steps + step + 1)
        total_loss += loss.detach() * len(idx)
        seen += len(idx)
        # The loss check and the progress bar sync every 10 steps; a caller's on_step hook, every step.
        if step % 10 == 0 or step == steps - 1:
            running = finite_loss(total_loss, seen, setup.world, epoch=epoch, step=step)
            bar.set_postfix(loss=f"{running:.4f}", samples_s=f"{seen * setup.world / (time.perf_counter() - start):.0f}")
        after_step(setup.hooks, setup.rank, epoch, step, steps, total_loss, seen)
    totals = all_reduce_sum(torch.stack([total_loss.float(), torch.tensor(float(seen), device=device)]))
    return {"train_loss": float(totals[0] / totals[1]), "train_seconds": time.perf_counter() - start,
            "samples_per_s": float(totals[1]) / (time.perf_counter() - start)}


def optimizer_step(state, loss: torch.Tensor, grad_clip: float, step: int) -> None:
    """Backward, clip, step the optimiser and the schedule, and Lookahead (`step` counts from 1)."""
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(state.net.parameters(), grad_clip)
    state.optimizer.step()
    state.scheduler.step()
    if state.lookahead is not None:
        state.lookahead.step(unwrap(state.net), step)


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
        inputs = task.make_batch(config, rows_on(device, data, idx), lengths[idx].to(device), train=False)
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
def probabilities(model, task, config, data, lengths, labels, *, batch_size: int, device) -> torch.Tensor:
    """Every row's label probabilities (rows, labels), on the CPU."""
    return torch.cat([torch.softmax(logits, 1).cpu() for logits, _ in
                      eval_logits(model, task, config, data, lengths, labels, batch_size=batch_size, device=device)])


def calibrate(model, task, config, data, lengths, labels, *, batch_size: int, device) -> dict:
    """The "unsure" threshold of `model` on these (validation) rows: see metrics.unsure_threshold."""
    probs = probabilities(model, task, config, data, lengths, labels, batch_size=batch_size, device=device)
    top, pred = probs.max(1)
    return unsure_threshold(top, pred == labels.cpu())


def to_device_cache(data: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Keep the decoded epoch on the GPU when it fits in a quarter of free memory, else pinned in RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if data.numel() * data.element_size() < free // 4:
            return data.to(device)
        return data.pin_memory()
    return data
