"""DDP under torchrun: one process per device, only rank 0 writes.

``torchrun --nproc_per_node N -m pseudolabel train ...`` sets WORLD_SIZE, RANK and LOCAL_RANK;
with WORLD_SIZE > 1 the process group is initialised (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pseudolabel.ops import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, the number of processes, its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


@contextlib.contextmanager
def distributed_context(device_name: str) -> Iterator[DistInfo]:
    """Initialise the process group when WORLD_SIZE > 1 and tear it down at the end."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    started = False
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started = True
        log.info("DDP: rank %d of %d on %s", rank, world, device)
    try:
        yield DistInfo(rank, world, local_rank, device)
    finally:
        if started:
            dist.destroy_process_group()


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """The mean of a per-process number over all processes."""
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size
