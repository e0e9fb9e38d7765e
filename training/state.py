"""What one training run is made of: its `Setup`, fixed before the first step, and its `TrainingState`,
which every epoch changes and which saves itself as the resume state and restores itself from it.

training/engine.py builds both (`set_up`), then trains the state epoch by epoch (training/loop.py).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from training import checkpoint as ckpt
from training.data import Splits
from training.loop import Hooks
from training.optim import Lookahead
from training.settings import RunSettings
from training.tasks import Task


@dataclass
class Setup:
    """What the steps of one run share and never change once it starts: the task and its settled settings,
    this process's place in a distributed run, the data (decoded once), and the loss's class weights and the
    frozen body's head (--freeze-backbone)."""
    task: Task
    settings: RunSettings
    rank: int
    world: int
    device: torch.device
    splits: Splits
    config: object = None            # the task's settings, as trained (fitted, or from --init-from / --resume)
    recipe: dict | None = None       # the default recipe chosen from the data, as config.json records it
    validation: dict | None = None   # a cross-validation's out-of-fold scores, for its run on every row
    parent: dict | None = None       # --init-from: what the starting checkpoint recorded
    transferred: dict | None = None  # --transfer-from: config.json's transferred_from
    stages: list = field(default_factory=list)   # --init-from: the earlier runs' epochs, for metrics.json
    resume: dict | None = None       # --resume: the state saved after the last finished epoch
    train_x: torch.Tensor | None = None
    train_len: torch.Tensor | None = None
    val_x: torch.Tensor | None = None
    val_len: torch.Tensor | None = None
    loss_weight: torch.Tensor | None = None
    head_only: nn.Module | None = None   # --freeze-backbone: the one part that trains
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


@dataclass
class TrainingState:
    """What training changes: the model (and `net`, the model wrapped for DistributedDataParallel when the
    run has several processes), the optimiser, its schedule and Lookahead, the epochs done and their
    history, the best epoch so far and the epochs since it; and why training stopped early, if it did."""
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    lookahead: Lookahead | None = None
    epoch: int = 0                   # epochs done
    history: list = field(default_factory=list)
    best: dict | None = None
    stale: int = 0
    stopped: str | None = None       # "time limit"

    def resume_state(self, setup: Setup) -> dict:
        """Everything --resume needs to go on exactly as the uninterrupted run would: tensors and plain
        containers only (read back with weights_only)."""
        return {"model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch, "history": self.history, "best": self.best, "stale": self.stale,
                "task_config": setup.task.config_to_dict(setup.config), "recipe": setup.recipe,
                "parent": setup.parent, "stages": setup.stages, "transferred": setup.transferred,
                "lookahead": self.lookahead.state_dict() if self.lookahead is not None else None}

    def save(self, setup: Setup) -> None:
        """The resume state, written atomically beside the checkpoint."""
        ckpt.save_resume(setup.out, self.resume_state(setup))

    def restore(self, saved: dict) -> None:
        """Continue from a resume state: weights, optimiser, schedule, Lookahead and the run's history."""
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.lookahead is not None and saved.get("lookahead") is not None:
            self.lookahead.load_state_dict(saved["lookahead"])
        self.epoch, self.history, self.stale = int(saved["epoch"]), list(saved["history"]), int(saved["stale"])
        self.best = saved.get("best")
