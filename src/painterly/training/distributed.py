"""Data-parallel training with ``torch.distributed``, launched by ``torchrun``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``);
without them training runs in one process. The backend is NCCL on CUDA and gloo on CPU. Each rank
draws different images (see :mod:`painterly.training.data`), DDP averages the gradients, and only
rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import resolve_device
from ..errors import PainterlyError


@dataclass
class DistInfo:
    """Where this process stands: rank, world size, local rank and device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Read the ``torchrun`` environment; start the process group when ``WORLD_SIZE`` > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=resolve_device(device))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = resolve_device(device)
    if dev.type == "cuda":
        if local >= torch.cuda.device_count():
            raise PainterlyError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA "
                                 f"device(s): use --nproc_per_node <= the GPU count")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        backend = "gloo"
    initialized = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        initialized = True
    return DistInfo(rank, world, local, dev, initialized)


def wrap(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DDP-wrap ``model`` when running on several processes (identity otherwise)."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def mean_across(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar logs over ranks (so rank 0 logs the global batch's losses)."""
    if not info.enabled or not values:
        return values
    t = torch.tensor([float(v) for v in values.values()], dtype=torch.float64,
                     device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(values, t.tolist()))


def any_across(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is true on any (so all ranks stop together)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Tear down the process group if this module started it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()
