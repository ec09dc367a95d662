"""Mixed precision: whether a device computes bf16 natively, and the autocast context a training
step runs under.

bf16 autocast pays off on CUDA GPUs with bf16 and on CPUs with AVX512-BF16 or AMX (Intel Sapphire
Rapids and later), whose matrix units multiply bf16 several times faster than fp32; on other CPUs
PyTorch emulates bf16 and autocast slows a step down, so :func:`training_autocast` leaves it off
there.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from functools import cache

import torch

__all__ = ["bf16_supported", "training_autocast"]


@cache
def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA with bf16, or a CPU whose ``/proc/cpuinfo``
    flags include ``avx512_bf16`` or ``amx_bf16`` (``False`` where the file cannot be read)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_has_bf16()
    return False


def training_autocast(device: torch.device, *, cuda: bool, cpu: bool) -> AbstractContextManager:
    """bf16 autocast for a training step on ``device``: on CUDA when ``cuda``, on a CPU that
    computes bf16 natively (:func:`bf16_supported`) when ``cpu``; otherwise a no-op context."""
    if device.type == "cuda" and cuda:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu and bf16_supported(device):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()
