"""The optimiser and its schedule: SGD (Nesterov) or AdamW, warm-up + linear decay, airbench's Lookahead,
bf16 autocast, and inverse-frequency class weights."""

from __future__ import annotations

import torch
from torch import nn

from training.settings import TrainSettings


def make_optimizer(model: nn.Module, train: TrainSettings, head: nn.Module | None = None) -> torch.optim.Optimizer:
    # No weight decay on biases and norm weights (1-d parameters): standard since Goyal et al. (2017).
    # BatchNorm parameters may get a larger learning rate (--norm-lr-scale; airbench: 64x for its shifts);
    # everything but the classifier `head` may get a smaller one (--backbone-lr-scale, for pretrained bodies).
    norm = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for p in m.parameters() if p.requires_grad}
    in_head = {id(p) for p in head.parameters()} if head is not None else set()
    groups = []
    for part, scale in (("body", train.backbone_lr_scale if head is not None else 1.0), ("head", 1.0)):
        trained = [p for p in model.parameters() if p.requires_grad and (id(p) in in_head) == (part == "head")]
        groups += [{"params": [p for p in trained if p.dim() > 1], "weight_decay": train.weight_decay,
                    "lr": train.lr * scale},
                   {"params": [p for p in trained if p.dim() <= 1 and id(p) not in norm], "weight_decay": 0.0,
                    "lr": train.lr * scale},
                   {"params": [p for p in trained if id(p) in norm], "weight_decay": 0.0,
                    "lr": train.lr * scale * train.norm_lr_scale}]
    groups = [g for g in groups if g["params"]]
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=train.lr)


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
