r"""Student losses: SmoothL1 regression (Exp 1.1–1.3), InfoNCE (1.4, 2.1) and per-token SmoothL1 (2.2).

Targets are the teacher's body embeddings, **centred with the training mean and L2-normalised by
the data pipeline** (``DESIGN.md``, jepa *Students and losses*); these functions do not centre
anything. :class:`InfoNCE` normalises its inputs itself (cosine logits), the regression losses
compare the vectors as given.

InfoNCE (van den Oord et al., 2018, arXiv:1807.03748; CLIP's learnable temperature, Radford et al.,
2021) over the *global* batch: for anchor :math:`i` with prediction :math:`p_i` and the targets
:math:`t_j` of every rank,

.. math::
    \mathcal L_i = -\log \frac{\exp(\cos(p_i, t_{i^+}) / \tau)}
        {\sum_{j \in \mathcal C_i} \exp(\cos(p_i, t_j) / \tau)
         + \sum_{h \in \mathcal H_i} \exp(\cos(p_i, n_{i,h}) / \tau)}

where :math:`i^+` is the anchor's own target, :math:`\mathcal C_i` the global batch's targets less
those with the anchor's body key (identical bodies, other than the positive itself), and
:math:`\mathcal H_i` its hard negatives (Exp 2.1). Targets are gathered from all ranks with the
gradient-correct ``torch.distributed.nn.functional.all_gather`` (:func:`gather_with_grad`).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InfoNCE", "gather_with_grad", "smooth_l1", "token_smooth_l1"]


def smooth_l1(pred: Tensor, target: Tensor) -> Tensor:
    """SmoothL1 (β = 1) between predicted and target body embeddings, mean over all elements.

    The record's regression loss (Exp 1.1–1.3). ``target`` is expected centred and L2-normalised
    by the data pipeline; nothing is normalised here.

    Shapes:
        pred, target: ``[B, D]`` -> scalar.

    Raises:
        ValueError: the shapes differ or are not ``[B, D]``.
    """
    if pred.dim() != 2 or pred.shape != target.shape:
        raise ValueError(f"pred and target must both be [B, D], got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    return F.smooth_l1_loss(pred, target)


def token_smooth_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """SmoothL1 (β = 1) over the real body tokens only: mean over those tokens and all D dims.

    The auxiliary loss of Exp 2.2 (weighted λ = 0.1 beside InfoNCE in the record). Per-token
    targets are whatever the data pipeline gives (centred and normalised there, if at all).

    Shapes:
        pred, target: ``[B, P, D]``; mask: ``[B, P]`` bool, True = real body token -> scalar.

    Raises:
        ValueError: mismatched shapes, a non-bool mask, or a mask without any real token.
    """
    if pred.dim() != 3 or pred.shape != target.shape:
        raise ValueError(f"pred and target must both be [B, P, D], got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    if mask.dtype != torch.bool or mask.shape != pred.shape[:2]:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(pred.shape[:2])}, got "
                         f"{mask.dtype} {tuple(mask.shape)}")
    if not mask.any():
        raise ValueError("mask has no real body token; the loss would be undefined")
    return F.smooth_l1_loss(pred[mask], target[mask])  # (M, D) each, M = real tokens


def _world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _batch_sizes(n: int, device: torch.device) -> list[int]:
    """The first-dimension size on every rank (one tiny all_gather)."""
    _, world = _world()
    mine = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(sizes, mine)
    return [int(s) for s in sizes]


def _gather(x: Tensor, sizes: list[int], grad: bool) -> Tensor:
    """Concatenate ``x`` of every rank (``sizes`` rows each) along dim 0; padded when uneven."""
    from torch.distributed.nn.functional import all_gather

    most = max(sizes)
    padded = x if x.size(0) == most else torch.cat(
        [x, x.new_zeros((most - x.size(0), *x.shape[1:]))])  # (most, ...)
    if grad:
        parts = all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])  # (sum(sizes), ...)


def gather_with_grad(x: Tensor) -> Tensor:
    """``x`` of every rank, concatenated in rank order, with a gradient back to each rank's ``x``.

    Uses ``torch.distributed.nn.functional.all_gather``, whose backward sums the gradients of all
    ranks for each rank's slice: with every rank's loss a mean over its own anchors and DDP
    averaging parameter gradients, the step equals one process's step on the global batch. Ranks
    may hold different numbers of rows (padded for the collective and trimmed). Every rank must
    call it (it is a collective), and either all with ``x.requires_grad`` or none.

    Shapes:
        x: ``[B_r, ...]`` -> ``[sum_r B_r, ...]``; ``x`` itself when no process group of size > 1
        is initialised.
    """
    _, world = _world()
    if world == 1:
        return x
    return _gather(x, _batch_sizes(x.size(0), x.device), grad=True)


class InfoNCE(nn.Module):
    r"""InfoNCE with a learnable temperature over globally gathered in-batch negatives (Exp 1.4, 2.1).

    See the module docstring for the formula. ``τ = exp(log_temperature)`` starts at
    ``temperature`` (0.07, CLIP's value); call :meth:`clamp_` after every optimiser step (the
    trainer's ``after_step``) to keep it in ``[min_temperature, max_temperature]``, and exclude
    :meth:`no_weight_decay` from weight decay. Keep this module *inside* the DDP-wrapped model so
    that the temperature's gradient is averaged over ranks like every other parameter (then it
    stays identical on every rank).

    The cosine logits are computed in float32 (float64 for float64 inputs) with autocast off (with
    τ ≈ 0.05 a bf16 logit of ~20 would carry an error of ~0.1).

    Args:
        temperature (float): initial τ (default 0.07).
        min_temperature (float): lower clamp of τ (default 0.01).
        max_temperature (float): upper clamp of τ (default 1.0).

    Shapes:
        - pred: ``[B, D]`` student predictions (any norm; normalised here)
        - target: ``[B, D]`` teacher body embeddings (normalised here)
        - body_keys: ``[B]`` int64, one id per distinct body (equal ids = identical bodies)
        - hard_negatives: ``[B, H, D]`` (optional) extra negatives per anchor
        - hard_mask: ``[B, H]`` bool (optional), True = a real hard negative
        - output: ``(loss scalar, {"temperature", "accuracy", "negatives"})``
    """

    def __init__(self, temperature: float = 0.07, min_temperature: float = 0.01,
                 max_temperature: float = 1.0) -> None:
        super().__init__()
        if not 0 < min_temperature <= temperature <= max_temperature:
            raise ValueError(f"need 0 < min_temperature <= temperature <= max_temperature, got "
                             f"{min_temperature}, {temperature}, {max_temperature}")
        self.initial_temperature = temperature
        self.min_temperature, self.max_temperature = min_temperature, max_temperature
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    def reset_parameters(self) -> None:
        """Set τ back to its initial value."""
        with torch.no_grad():
            self.log_temperature.fill_(math.log(self.initial_temperature))

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature:.4g}, min_temperature={self.min_temperature}, "
                f"max_temperature={self.max_temperature}")

    @property
    def temperature(self) -> float:
        """The current τ."""
        return float(self.log_temperature.detach().exp())

    def no_weight_decay(self) -> set[str]:
        """Parameter names (relative to this module) that take no weight decay."""
        return {"log_temperature"}

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp τ into ``[min_temperature, max_temperature]`` in place (after an optimiser step)."""
        self.log_temperature.clamp_(math.log(self.min_temperature), math.log(self.max_temperature))

    def forward(self, pred: Tensor, target: Tensor, body_keys: Tensor,
                hard_negatives: Tensor | None = None,
                hard_mask: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """The mean InfoNCE loss over this rank's anchors, and its statistics.

        Stats: ``temperature`` (τ), ``accuracy`` (share of anchors whose positive scores highest
        among the global in-batch candidates, hard negatives not counted) and ``negatives``
        (mean number of negatives per anchor: unmasked in-batch targets plus real hard negatives).

        Raises:
            ValueError: inconsistent shapes or dtypes.
        """
        b, d = self._check(pred, target, body_keys, hard_negatives, hard_mask)
        rank, world = _world()
        dtype = torch.promote_types(pred.dtype, torch.float32)  # bf16/fp16 -> fp32; fp64 stays
        with torch.autocast(device_type=pred.device.type, enabled=False):
            p = F.normalize(pred.to(dtype), dim=-1)  # (B, D)
            t = F.normalize(target.to(dtype), dim=-1)  # (B, D)
            if world > 1:
                sizes = _batch_sizes(b, pred.device)
                offset = sum(sizes[:rank])
                all_t = _gather(t, sizes, grad=True)  # (N, D), N = global batch
                all_keys = _gather(body_keys, sizes, grad=False)  # (N,)
            else:
                offset, all_t, all_keys = 0, t, body_keys
            tau = self.log_temperature.to(dtype).exp()
            logits = p @ all_t.T / tau  # (B, N)
            positive = offset + torch.arange(b, device=pred.device)  # (B,)
            same_body = body_keys[:, None] == all_keys[None, :]  # (B, N)
            same_body[torch.arange(b, device=pred.device), positive] = False
            logits = logits.masked_fill(same_body, float("-inf"))
            in_batch = logits
            negatives = (all_t.size(0) - 1) - same_body.sum(dim=1)  # (B,)
            if hard_negatives is not None:
                h = F.normalize(hard_negatives.to(dtype), dim=-1)  # (B, H, D)
                hard = torch.einsum("bd,bhd->bh", p, h) / tau  # (B, H)
                if hard_mask is not None:
                    hard = hard.masked_fill(~hard_mask, float("-inf"))
                    negatives = negatives + hard_mask.sum(dim=1)
                else:
                    negatives = negatives + hard.size(1)
                logits = torch.cat([logits, hard], dim=1)  # (B, N + H)
            loss = F.cross_entropy(logits, positive)
        with torch.no_grad():
            accuracy = (in_batch.argmax(dim=1) == positive).float().mean()
        return loss, {"temperature": float(tau.detach()), "accuracy": float(accuracy),
                      "negatives": float(negatives.float().mean())}

    @staticmethod
    def _check(pred: Tensor, target: Tensor, body_keys: Tensor, hard_negatives: Tensor | None,
               hard_mask: Tensor | None) -> tuple[int, int]:
        if pred.dim() != 2 or pred.shape != target.shape:
            raise ValueError(f"pred and target must both be [B, D], got {tuple(pred.shape)} and "
                             f"{tuple(target.shape)}")
        b, d = pred.shape
        if body_keys.shape != (b,) or body_keys.dtype != torch.long:
            raise ValueError(f"body_keys must be an int64 tensor of shape ({b},) (one id per "
                             f"distinct body), got {body_keys.dtype} {tuple(body_keys.shape)}")
        if hard_negatives is None:
            if hard_mask is not None:
                raise ValueError("hard_mask was given without hard_negatives")
            return b, d
        if hard_negatives.dim() != 3 or hard_negatives.shape[0] != b or hard_negatives.shape[2] != d:
            raise ValueError(f"hard_negatives must be [{b}, H, {d}], got "
                             f"{tuple(hard_negatives.shape)}")
        if hard_mask is not None and (hard_mask.dtype != torch.bool
                                      or hard_mask.shape != hard_negatives.shape[:2]):
            raise ValueError(f"hard_mask must be a bool tensor of shape "
                             f"{tuple(hard_negatives.shape[:2])}, got {hard_mask.dtype} "
                             f"{tuple(hard_mask.shape)}")
        return b, d
