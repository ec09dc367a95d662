"""torchrun process groups for the trainer: who this process is, and joining / leaving the group.

nanoGPT's set-up: when ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` are set (``torchrun``), join the
process group with NCCL on CUDA (one GPU per local rank) or gloo on CPU; otherwise run as rank 0
of 1. Entry points call :func:`init_distributed` once at the start and
:func:`cleanup_distributed` once at the end; :class:`harness.trainer.Trainer` takes the
:class:`DistContext` and hands it to the task (``set_dist``), which shards its data by rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "cleanup_distributed", "init_distributed", "local_world_size"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 when not launched by torchrun).
        local_rank: rank on this machine (selects the GPU).
        world_size: number of processes.
        device: the device this rank trains on (``cuda:<local_rank>`` under DDP on GPUs).
        ddp: ``True`` when launched by torchrun (a process group exists, even of size 1).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    ddp: bool = False

    @property
    def master(self) -> bool:
        """Rank 0: the only process that writes files and logs at INFO."""
        return self.rank == 0


def init_distributed(device: str | torch.device = "auto") -> DistContext:
    """Join torchrun's process group when launched by it (nanoGPT's set-up); idempotent.

    Args:
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or a ``torch.device``. Under
            torchrun a CUDA device becomes ``cuda:<LOCAL_RANK>`` and the backend NCCL; on CPU the
            backend is gloo.

    Returns:
        The process's :class:`DistContext` (rank 0 of 1 when ``RANK`` is not set).

    Raises:
        RuntimeError: CUDA was asked for under torchrun but ``LOCAL_RANK`` has no GPU.
    """
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if int(os.environ.get("RANK", -1)) == -1:
        return DistContext(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs "
                               "are visible; start at most that many processes per node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, local_rank, world_size, device, ddp=True)


def cleanup_distributed() -> None:
    """Destroy the process group if one exists (call once, at the end of the entry point)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def local_world_size() -> int:
    """Processes of this run on this machine (torchrun's ``LOCAL_WORLD_SIZE``; 1 without it).

    Per-process resources such as sandbox workers divide the machine's cores by this.
    """
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
