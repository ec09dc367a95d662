"""harness.precision: bf16 autocast of a training step on CUDA and on CPUs that compute bf16."""

import torch

from harness import precision


def _inner_dtype(ctx) -> torch.dtype:
    a = torch.randn(4, 4)
    with ctx:
        return (a @ a).dtype


def test_cpu_autocast_follows_the_flag_and_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "_cpu_has_bf16", lambda: True)
    assert precision.bf16_supported(cpu)
    assert _inner_dtype(precision.training_autocast(cpu, cuda=True, cpu=True)) == torch.bfloat16
    assert _inner_dtype(precision.training_autocast(cpu, cuda=True, cpu=False)) == torch.float32
    # a CPU without native bf16 keeps fp32 even when asked (emulated bf16 is slower)
    monkeypatch.setattr(precision, "_cpu_has_bf16", lambda: False)
    assert not precision.bf16_supported(cpu)
    assert _inner_dtype(precision.training_autocast(cpu, cuda=True, cpu=True)) == torch.float32


def test_other_devices_are_not_bf16():
    assert not precision.bf16_supported(torch.device("meta"))
