"""DistributedDataParallel plumbing: one process per GPU (nccl) or per CPU worker (gloo) under torchrun."""

from __future__ import annotations

import math
import os

import torch
import torch.distributed as dist

from training.device import pick_device


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


def shut_down(world: int) -> None:
    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def shard(indices: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share of `indices`; padded by wrapping so every rank runs the same number of steps."""
    if world == 1:
        return indices
    per_rank = math.ceil(len(indices) / world)
    padded = torch.cat([indices, indices[: per_rank * world - len(indices)]])
    return padded[rank::world]
