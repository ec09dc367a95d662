"""Curricula over corruption rates: which rate a training sample is corrupted at, per epoch.

DESIGN.md ("Trajectories"): "Curriculum over corruption rates (easy to hard, then mixed)". Three
schedules are configurable (``corruption.curriculum``), over the configured ``corruption.rates``
taken in the order given (easy first):

* ``fixed``: every sample at ``rates[0]`` (a single-rate run; the other rates are only
  evaluated).
* ``increasing``: the record's curriculum. Over the first ``curriculum_fraction`` of the epochs
  the rates are unlocked one at a time, easy to hard (at epoch ``e`` < ``u`` the first
  ``1 + e * len(rates) // u`` rates are drawn uniformly, ``u = round(fraction * epochs)``); after
  that, every rate uniformly ("then mixed").
* ``mixed``: every rate uniformly from the first epoch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CURRICULA", "sample_rate"]

CURRICULA = ("fixed", "increasing", "mixed")


def sample_rate(rates: list[float], epoch: int, epochs: int, *, curriculum: str = "increasing",
                fraction: float = 0.5, rng: np.random.Generator) -> float:
    """Corruption rate of one training sample.

    Args:
        rates: corruption rates, easy first (e.g. ``[0.2, 0.5, 0.75]``).
        epoch: the current epoch, from 0.
        epochs: the number of epochs of the run.
        curriculum: ``fixed``, ``increasing`` or ``mixed`` (see the module docstring).
        fraction: share of the epochs over which ``increasing`` unlocks the harder rates.
        rng: the generator the draw is taken from (seeded by the caller).

    Returns:
        A rate from ``rates``.

    Raises:
        ValueError: if ``rates`` is empty or ``curriculum`` is not one of :data:`CURRICULA`.
    """
    if not rates:
        raise ValueError("corruption.rates is empty: give at least one rate, e.g. [0.2, 0.5, 0.75]")
    if curriculum == "fixed":
        return float(rates[0])
    if curriculum == "increasing":
        unlock_epochs = max(1, int(round(fraction * epochs)))
        allowed = 1 + (epoch * len(rates)) // unlock_epochs if epoch < unlock_epochs else len(rates)
        return float(rates[int(rng.integers(allowed))])
    if curriculum == "mixed":
        return float(rates[int(rng.integers(len(rates)))])
    raise ValueError(f"unknown curriculum {curriculum!r}; valid: {list(CURRICULA)}")
