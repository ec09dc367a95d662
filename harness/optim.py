"""Optimisation pieces of the trainer: AdamW parameter groups and the learning-rate schedule.

* :func:`param_groups`: no weight decay on biases, norm weights, scalars (a learnable temperature)
  and whatever the model names in ``no_weight_decay()`` — the convention of nanoGPT's
  ``configure_optimizers`` and timm's ``no_weight_decay()``.
* :class:`LRSchedule` / :func:`learning_rate`: linear warm-up, then constant or cosine decay to a
  floor (the nanoGPT schedule, after Loshchilov & Hutter, "SGDR", ICLR 2017), a pure function of
  the step so that a resumed run continues the same sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["LRSchedule", "learning_rate", "param_groups"]


@dataclass(frozen=True)
class LRSchedule:
    """The learning-rate schedule of a run (stored in every checkpoint; see :func:`learning_rate`).

    Attributes:
        schedule: ``constant`` or ``cosine``.
        lr: peak learning rate; min_lr: where the cosine ends.
        warmup_steps: steps of linear warm-up.
        total_steps: optimisation steps of the whole run (what the cosine spans).
    """

    schedule: str
    lr: float
    min_lr: float
    warmup_steps: int
    total_steps: int


def learning_rate(s: LRSchedule, step: int) -> float:
    """Learning rate of optimisation step ``step`` (counted from 0).

    Warm-up: ``lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``. Then ``lr``
    (constant) or ``min_lr + (lr - min_lr) * (1 + cos(pi * t)) / 2`` with
    ``t = (step - warmup_steps) / (total_steps - warmup_steps)`` clipped to ``[0, 1]`` (cosine;
    the nanoGPT schedule).
    """
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    if s.schedule == "constant":
        return s.lr
    t = min(1.0, (step - s.warmup_steps) / max(1, s.total_steps - s.warmup_steps))
    return s.min_lr + (s.lr - s.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: ``decay`` (>= 2-D weights) and ``no_decay`` (the rest).

    A parameter takes no weight decay when it has fewer than two dimensions (biases, norm weights,
    a scalar temperature) or when ``model.no_weight_decay()`` (optional, timm's convention) names
    it. Frozen parameters (``requires_grad=False``) are left out; empty groups are dropped.

    Raises:
        ValueError: ``no_weight_decay()`` names something that is not a parameter of ``model``.
    """
    params = dict(model.named_parameters())
    hook = getattr(model, "no_weight_decay", None)
    named = set(hook()) if hook is not None else set()
    unknown = sorted(named - params.keys())
    if unknown:
        raise ValueError(f"{type(model).__name__}.no_weight_decay() names {unknown}, which are not "
                         f"parameters of the model; use names from named_parameters(), e.g. "
                         f"{sorted(params)[:4]}")
    trained = {n: p for n, p in params.items() if p.requires_grad}
    no_decay = [p for n, p in trained.items() if p.ndim < 2 or n in named]
    decay = [p for n, p in trained.items() if not (p.ndim < 2 or n in named)]
    groups = [{"name": "decay", "params": decay, "weight_decay": weight_decay},
              {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
