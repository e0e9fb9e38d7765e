"""The one training loop, for every task: read it top to bottom.

`run(args, task)` loads the data (training/data.py), decodes it once into tensors (training/cache.py),
builds the task's model (fresh, or from an earlier checkpoint's weights with --init-from), and trains it
epoch by epoch: SGD or AdamW with a warm-up + linear-decay schedule (optionally with airbench's
Lookahead), bf16 autocast and channels_last on CUDA (and on CPUs with bf16 units, by --precision bf16), a
finite-loss check, validation accuracy / macro-F1 / per-label scores after every epoch, the best
checkpoint kept, resume state written atomically after every epoch, early stopping, and
DistributedDataParallel when started by torchrun.

Randomness is derived from (seed, epoch) at the start of every epoch, so a run resumed from the state
saved after epoch k repeats epochs k+1... exactly as the uninterrupted run does.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from training import checkpoint as ckpt
from training.cache import encode_split
from training.data import load_splits
from training.device import describe, pick_device
from training.metrics import confusion_matrix, from_confusion, unsure_threshold
from training.reports import write_reports


class TrainingError(Exception):
    """A run that cannot go on; the message says what happened and what was kept."""


# ------------------------------------------------------------------------------------------ distributed

def setup_distributed(requested_device: str | None) -> tuple[int, int, torch.device]:
    """(rank, world_size, device). Under torchrun: one process per GPU (nccl) or per CPU worker (gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, pick_device(requested_device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# -------------------------------------------------------------------------------------------- schedule

def make_optimizer(model: nn.Module, args) -> torch.optim.Optimizer:
    # No weight decay on biases and norm weights (1-d parameters): standard since Goyal et al. (2017).
    # BatchNorm parameters may get a larger learning rate (--norm-lr-scale; airbench: 64x for its shifts).
    norm = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for p in m.parameters() if p.requires_grad}
    trained = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trained if p.dim() > 1], "weight_decay": args.weight_decay},
              {"params": [p for p in trained if p.dim() <= 1 and id(p) not in norm], "weight_decay": 0.0},
              {"params": [p for p in trained if id(p) in norm], "weight_decay": 0.0,
               "lr": args.lr * getattr(args, "norm_lr_scale", 1.0)}]
    groups = [g for g in groups if g["params"]]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=getattr(args, "momentum", 0.9), nesterov=True)
    return torch.optim.AdamW(groups, lr=args.lr)


class Lookahead:
    """airbench's Lookahead (Zhang et al., 2019): every 5 steps the slow weights move toward the fast ones
    by 1 - decay and the fast weights restart from them. decay = 0.95^5 * (step / total)^3 grows from 0
    (plain SGD early on) to 0.77, averaging over the last, low-learning-rate steps; `finish` makes the slow
    weights the model. Buffers (BatchNorm statistics) are averaged too."""

    EVERY = 5

    def __init__(self, model: nn.Module, total_steps: int):
        self.total = max(1, total_steps)
        self.slow = [t.detach().clone() for t in self.tensors(model)]

    @staticmethod
    def tensors(model: nn.Module) -> list[torch.Tensor]:
        return [t for t in model.state_dict().values() if t.is_floating_point()]

    @torch.no_grad()
    def step(self, model: nn.Module, step: int) -> None:
        if step % self.EVERY == 0:
            self.update(model, 0.95 ** 5 * (step / self.total) ** 3)

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        for slow, fast in zip(self.slow, self.tensors(model)):
            slow.lerp_(fast, 1 - decay)
            fast.copy_(slow)

    def finish(self, model: nn.Module) -> None:
        self.update(model, 1.0)

    def state_dict(self) -> list[torch.Tensor]:
        return [t.cpu() for t in self.slow]

    def load_state_dict(self, state: list[torch.Tensor]) -> None:
        for slow, saved in zip(self.slow, state):
            slow.copy_(saved)


def use_bf16(precision: str, device: torch.device) -> bool:
    """--precision: auto is bf16 autocast on CUDA only; bf16 asks for it anywhere (CPUs with bf16 units)."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def make_schedule(optimizer, total_steps: int, warmup_fraction: float):
    """Linear warm-up from 10% of the peak, then linear decay to 0: the one-cycle shape of airbench."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return 0.1 + 0.9 * step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def class_weights(labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Inverse label frequency, normalised to mean 1 (labels absent from training get weight 1)."""
    counts = torch.bincount(labels, minlength=num_labels).double()
    w = torch.where(counts > 0, counts.sum() / (num_labels * counts.clamp(min=1)), torch.ones_like(counts))
    return (w / w.mean()).float()


# ---------------------------------------------------------------------------------------------- epochs

def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    torch.manual_seed(seed * 1_000_003 + epoch)   # dropout and any op using the global RNG
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def shard(indices: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share of `indices`; padded by wrapping so every rank runs the same number of steps."""
    if world == 1:
        return indices
    per_rank = math.ceil(len(indices) / world)
    padded = torch.cat([indices, indices[: per_rank * world - len(indices)]])
    return padded[rank::world]


def steps_per_epoch(rows: int, batch_size: int) -> int:
    """Full batches in an epoch of `rows`: the ragged last batch is dropped (BatchNorm needs more than one
    row); a split smaller than one batch is a single batch."""
    return rows // batch_size if rows > batch_size else 1


def train_one_epoch(model, task, config, data, lengths, labels, optimizer, scheduler, *, args, epoch: int,
                    device, rank: int, world: int, loss_weight=None, show_progress=True, lookahead=None) -> dict:
    from tqdm.auto import tqdm

    model.train()
    g = epoch_generator(args.seed, epoch)
    order = shard(torch.randperm(len(labels), generator=g), rank, world)
    bs = args.batch_size
    steps = steps_per_epoch(len(order), bs)
    use_amp = use_bf16(getattr(args, "precision", "auto"), device)
    total_loss = torch.zeros((), device=device)
    seen, start = 0, time.perf_counter()
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch", leave=False,
               disable=not show_progress, dynamic_ncols=True)
    for step in bar:
        idx = order[step * bs:(step + 1) * bs]
        x = data[idx].to(device, non_blocking=True) if data.device != device else data[idx.to(device)]
        inputs = task.make_batch(config, x, lengths[idx].to(device), train=True, generator=g)
        y = labels[idx].to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(*inputs)
        loss = F.cross_entropy(logits.float(), y, weight=loss_weight, label_smoothing=args.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        scheduler.step()
        if lookahead is not None:
            lookahead.step(getattr(model, "module", model), epoch * steps + step + 1)
        total_loss += loss.detach() * len(idx)
        seen += len(idx)
        if step % 10 == 0 or step == steps - 1:
            # One sync every 10 steps. Summed over ranks, so every rank sees a NaN on any rank and all
            # stop together instead of the others waiting for it in the next gradient exchange.
            running = float(all_reduce_sum(total_loss.clone())) / max(1, seen * world)
            if not math.isfinite(running):
                kept = ("The last good checkpoint and resume state are kept" if epoch > 0
                        else "No epoch finished, so nothing was saved")
                raise TrainingError(f"the training loss became {running} at epoch {epoch + 1}, step {step + 1}. "
                                    f"{kept}; try a lower --lr.")
            bar.set_postfix(loss=f"{running:.4f}", samples_s=f"{seen * world / (time.perf_counter() - start):.0f}")
    totals = all_reduce_sum(torch.stack([total_loss.float(), torch.tensor(float(seen), device=device)]))
    return {"train_loss": float(totals[0] / totals[1]), "train_seconds": time.perf_counter() - start,
            "samples_per_s": float(totals[1]) / (time.perf_counter() - start)}


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


def record_unsure_threshold(folder, stats: dict) -> None:
    """Store the threshold in config.json, where the demo reads it."""
    config = ckpt.read_config(folder)
    config["unsure_threshold"] = stats["threshold"]
    config.setdefault("metrics", {})["unsure"] = stats
    ckpt.write_json(Path(folder) / ckpt.CONFIG_NAME, config)


# ------------------------------------------------------------------------------------------------- run

def to_device_cache(data: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Keep the decoded epoch on the GPU when it fits in a quarter of free memory, else pinned in RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if data.numel() * data.element_size() < free // 4:
            return data.to(device)
        return data.pin_memory()
    return data


def versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "torchaudio", "datasets", "tokenizers", "safetensors"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def hardware(device: torch.device, world: int) -> str:
    where = describe(device) if device.type == "cuda" else f"{device.type} ({os.cpu_count()} cores, {platform.machine()})"
    return f"{world} x {where}" if world > 1 else where


def json_args(args) -> dict:
    """The arguments as JSON values: tuples (e.g. --widths) become lists, so `recorded_args` gets back
    values the tasks can use; anything else that JSON cannot hold is recorded as its text."""
    return {k: (list(v) if isinstance(v, tuple) else
                v if isinstance(v, (int, float, str, bool, type(None), list)) else str(v))
            for k, v in vars(args).items() if not k.startswith("_") and k != "func"}


def load_task_splits(task, args, dataset: str | None = None):
    """The training and validation rows that the training arguments `args` select (any object with the
    CLI's attribute names, e.g. the `train_args` a checkpoint recorded); `dataset` overrides args.dataset."""
    return load_splits(dataset or args.dataset, input_candidates=task.INPUT_COLUMNS,
                       input_column=getattr(args, task.INPUT_FLAG[2:].replace("-", "_")),
                       label_column=args.label_column, name=args.dataset_config, revision=args.revision,
                       train_split=args.train_split, eval_split=args.eval_split, val_fraction=args.val_fraction,
                       group_column=args.group_column, seed=args.seed, max_train_samples=args.max_train_samples,
                       max_eval_samples=args.max_eval_samples, input_flag=task.INPUT_FLAG,
                       adapt=getattr(task, "adapt_dataset", None), args=args)


CARVE_ARGS = ("train_split", "val_fraction", "group_column", "seed")   # which rows a carved validation split holds


def start_from_checkpoint(task, config, folder, labels: list, args) -> tuple:
    """--init-from: (the model settings of the checkpoint in `folder`, what it recorded). The model
    arguments of this run (`config`) must describe the same network; only the task's TRAIN_FIELDS
    (augmentation, dropout...) are this run's. The tokenizer or other extra files come from `folder`.
    On the same dataset, a validation split carved from train must be carved the same way: otherwise this
    run would train on rows the checkpoint was validated on, and validate on rows it learned."""
    from dataclasses import fields

    recorded = ckpt.read_config(folder)
    if recorded.get("task") != task.NAME:
        raise TrainingError(f"--init-from {folder}: a {recorded.get('task')} checkpoint, not "
                            f"{'an' if task.NAME[0] in 'aeiou' else 'a'} {task.NAME} one.")
    if list(recorded.get("labels", [])) != list(labels):
        raise TrainingError(f"--init-from {folder}: its labels {recorded.get('labels')} are not this dataset's "
                            f"{list(labels)}; it can only continue on data with the same labels.")
    parent_args, parent_data = recorded.get("train_args", {}), recorded.get("dataset", {})
    if (args.eval_split is None and parent_data.get("id") == args.dataset
            and "held out" in str(parent_data.get("validation_split", ""))):
        moved = [f"--{k.replace('_', '-')} {parent_args.get(k)!r} (this run: {getattr(args, k)!r})" for k in CARVE_ARGS
                 if k in parent_args and parent_args[k] != getattr(args, k)]
        if moved:
            raise TrainingError(f"--init-from {folder}: it held out its validation rows with other arguments: "
                                f"{'; '.join(moved)}. This run would train on rows that checkpoint was validated "
                                "on and validate on rows it learned; give the same arguments.")
    start = task.config_from_dict(recorded["model"])
    train_fields = getattr(task, "TRAIN_FIELDS", ())
    fitted = getattr(task, "FITTED_FIELDS", ())
    differ = [f"{f.name} {getattr(start, f.name)!r} (this run: {getattr(config, f.name)!r})" for f in fields(config)
              if f.compare and f.name not in train_fields + fitted and getattr(start, f.name) != getattr(config, f.name)]
    if differ:
        raise TrainingError(f"--init-from {folder}: give the model arguments it was trained with; its settings "
                            f"differ in {'; '.join(differ)}.")
    task.load_extra(start, folder)
    for name in train_fields:
        setattr(start, name, getattr(config, name))
    keep = ("architecture", "train_args", "training_seconds", "hardware", "init_from")
    parent = {"checkpoint": str(folder), **{k: recorded[k] for k in keep if k in recorded},
              "metrics": {k: recorded.get("metrics", {}).get(k) for k in ("accuracy", "macro_f1", "epoch")}}
    return start, parent


def run(args, task) -> dict:
    """Train `task` as `args` say; returns the final metrics (the best epoch's)."""
    t0 = time.perf_counter()
    rank, world, device = setup_distributed(args.device)
    main = rank == 0
    out = Path(args.output)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = task.config_from_args(args)
    splits = load_task_splits(task, args)
    labels = splits.labels
    if main:
        ckpt.remove_stale_temporaries(out)   # from a save that was killed half-way
    resume = ckpt.load_resume(out) if args.resume else None
    parent_folder = getattr(args, "init_from", None)
    parent = None   # --init-from: what the starting checkpoint recorded (kept in this one's config.json)
    if resume is not None:
        config = task.config_from_dict(resume["task_config"])
        task.load_extra(config, out)
    else:
        if parent_folder is not None:
            config, parent = start_from_checkpoint(task, config, parent_folder, labels, args)
        config = task.fit(config, splits.train[splits.input_column])
        if main:
            task.save_extra(config, out)
    show = main and not args.quiet
    if main and not args.quiet:
        print(f"[triptych] {task.NAME}: {len(splits.train)} train / {len(splits.val)} validation rows, "
              f"{len(labels)} labels, device {hardware(device, world)}", file=sys.stderr)
    # The model first: a missing pretrained download fails now, not after minutes of decoding.
    torch.manual_seed(args.seed)
    fresh = resume is None and parent_folder is None
    model = task.build_model(config, len(labels), pretrained=getattr(config, "pretrained", False) and fresh)
    if resume is None and parent_folder is not None:
        model.load_state_dict(ckpt.read_weights(parent_folder))
    model.to(device)
    # Rank 0 decodes first and fills the disk cache; the other ranks then read it.
    if not main:
        barrier()
    train_x, train_len = encode_split(task, config, splits.train, splits.input_column, workers=args.workers,
                                      desc="decode train", show_progress=show, use_cache=not args.no_cache)
    val_x, val_len = encode_split(task, config, splits.val, splits.input_column, workers=args.workers,
                                  desc="decode validation", show_progress=show, use_cache=not args.no_cache)
    if main:
        barrier()
    train_x, val_x = to_device_cache(train_x, device), to_device_cache(val_x, device)

    if fresh and hasattr(task, "init_from_data"):
        task.init_from_data(model, config, train_x)   # e.g. airbench's whitening filters; resume restores them
    if task.NAME == "image" and (device.type == "cuda" or use_bf16(args.precision, device)):
        model = model.to(memory_format=torch.channels_last)   # what oneDNN / cuDNN's fast bf16 kernels want
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = make_optimizer(model, args)
    steps = steps_per_epoch(math.ceil(len(splits.train_labels) / world), args.batch_size)   # as shard() pads
    scheduler = make_schedule(optimizer, steps * args.epochs, args.warmup_fraction)
    lookahead = Lookahead(model, steps * args.epochs) if getattr(args, "lookahead", False) else None
    loss_weight = class_weights(splits.train_labels, len(labels)).to(device) if args.class_weights else None

    start_epoch, history, best, stale = 0, [], None, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        if lookahead is not None and resume.get("lookahead") is not None:
            lookahead.load_state_dict(resume["lookahead"])
        start_epoch, history, stale = int(resume["epoch"]), list(resume["history"]), int(resume["stale"])
        parent = resume.get("parent")
        best = resume.get("best")
        if main and not args.quiet:
            print(f"[triptych] resuming after epoch {start_epoch} from {out / ckpt.RESUME_NAME}", file=sys.stderr)
    first_step_s = time.perf_counter() - t0

    from tqdm.auto import tqdm
    epochs_bar = tqdm(range(start_epoch, args.epochs), desc="epochs", unit="epoch", disable=not show,
                      initial=start_epoch, total=args.epochs, dynamic_ncols=True)
    for epoch in epochs_bar:
        stats = train_one_epoch(net, task, config, train_x, train_len, splits.train_labels, optimizer, scheduler,
                                args=args, epoch=epoch, device=device, rank=rank, world=world,
                                loss_weight=loss_weight, show_progress=show, lookahead=lookahead)
        if lookahead is not None and epoch == args.epochs - 1:
            lookahead.finish(model)
        cm, val_loss = evaluate(model, task, config, val_x, val_len, splits.val_labels, len(labels),
                                batch_size=args.eval_batch_size or 2 * args.batch_size, device=device,
                                rank=rank, world=world, precision=args.precision)
        scores = from_confusion(cm, labels)
        history.append({"epoch": epoch + 1, "train_loss": round(stats["train_loss"], 5), "val_loss": round(val_loss, 5),
                        "val_accuracy": round(scores["accuracy"], 5), "val_macro_f1": round(scores["macro_f1"], 5),
                        "samples_per_s": round(stats["samples_per_s"], 1), "seconds": round(stats["train_seconds"], 2)})
        improved = best is None or scores["accuracy"] > best["accuracy"]
        if improved:
            best = {**scores, "epoch": epoch + 1, "confusion": cm.tolist()}
            stale = 0
        else:
            stale += 1
        if main:
            if improved:
                ckpt.save_checkpoint(out, model, checkpoint_config(task, config, splits, best, args, device, world,
                                                                   time.perf_counter() - t0, parent))
            ckpt.save_resume(out, {"model": {k: v.cpu() for k, v in model.state_dict().items()},
                                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                   "epoch": epoch + 1, "history": history, "best": best, "stale": stale,
                                   "task_config": task.config_to_dict(config), "parent": parent,
                                   "lookahead": lookahead.state_dict() if lookahead is not None else None})
        epochs_bar.set_postfix(val_acc=f"{scores['accuracy']:.4f}", best=f"{best['accuracy']:.4f}")
        if args.patience and stale >= args.patience:
            if main and not args.quiet:
                print(f"[triptych] early stop: no better validation accuracy for {stale} epochs", file=sys.stderr)
            break
    barrier()
    result = {k: v for k, v in best.items() if k != "confusion"}
    summary = {"best": result, "history": history, "seconds_to_first_step": round(first_step_s, 2),
               "total_seconds": round(time.perf_counter() - t0, 2), "hardware": hardware(device, world)}
    if main:
        model.load_state_dict(ckpt.read_weights(out))    # the best epoch's weights, as shipped
        summary["best"]["unsure"] = calibrate(model, task, config, val_x, val_len, splits.val_labels,
                                              batch_size=args.eval_batch_size or 2 * args.batch_size, device=device)
        record_unsure_threshold(out, summary["best"]["unsure"])
        write_reports(out, summary, torch.tensor(best["confusion"]), labels, history)
        from training.card import write_model_card
        write_model_card(out)   # README.md: the folder is a Hub model repository as it stands
        if not args.quiet:
            print(f"[triptych] best validation accuracy {result['accuracy']:.4f} (macro-F1 {result['macro_f1']:.4f}) "
                  f"at epoch {result['epoch']}; checkpoint in {out}", file=sys.stderr)
    if world > 1:
        dist.destroy_process_group()
    return summary


def checkpoint_config(task, config, splits, best, args, device, world, seconds, parent=None) -> dict:
    metrics = {k: v for k, v in best.items() if k != "confusion"}
    return {"task": task.NAME, "architecture": getattr(config, "architecture", task.NAME),
            "labels": list(splits.labels), "model": task.config_to_dict(config),
            "preprocessing": task.preprocessing(config), "metrics": metrics, "dataset": splits.info,
            "train_args": json_args(args), "versions": versions(), "hardware": hardware(device, world),
            "training_seconds": round(seconds, 1), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **({"init_from": parent} if parent else {})}
