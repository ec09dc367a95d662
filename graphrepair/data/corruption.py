"""Seeded leaf-token corruption (DESIGN.md "Corruption").

Exactly ``round(rate * n_eligible)`` eligible leaves are masked (Python's ``round``: halves go to
the even neighbour, so 2.5 -> 2); which ones is decided by a
:class:`numpy.random.Generator` seeded from ``(seed, task_id, rate)`` alone, so the same seed gives
the same corrupted inputs for every model that is compared, whatever order programs come in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["corrupt", "corruption_rng", "mask_texts", "unmask_texts"]


def corruption_rng(seed: int, task_id: str, rate: float, draw: int = 0) -> np.random.Generator:
    """A generator determined only by ``(seed, task_id, rate, draw)`` (stable across processes)."""
    key = f"{seed}|{task_id}|{rate:.6f}|{draw}".encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))


def corrupt(eligible: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Choose the leaves to mask.

    Args:
        eligible: bool ``[L]``, leaves whose category may be corrupted.
        rate: fraction of eligible leaves to mask, in [0, 1].
        rng: the generator (see :func:`corruption_rng`).

    Returns:
        bool ``[L]`` with exactly ``round(rate * eligible.sum())`` True entries, all eligible.

    Raises:
        ValueError: if ``rate`` is outside [0, 1].
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"corruption rate must be in [0, 1], got {rate}")
    candidates = np.flatnonzero(eligible)
    k = int(round(rate * len(candidates)))
    masked = np.zeros(len(eligible), dtype=bool)
    if k:
        masked[rng.choice(candidates, size=k, replace=False)] = True
    return masked


def mask_texts(texts: Sequence[str], masked: np.ndarray) -> list[str | None]:
    """The leaf texts of a corrupted program: ``None`` where ``masked`` (bool ``[L]``) is True.

    Raises:
        ValueError: if ``masked`` does not have one entry per text.
    """
    if len(masked) != len(texts):
        raise ValueError(f"mask has {len(masked)} entries for {len(texts)} leaf texts")
    return [None if m else t for t, m in zip(texts, masked.tolist())]


def unmask_texts(texts: Sequence[str | None], originals: Sequence[str]) -> list[str]:
    """Undo :func:`mask_texts`: every ``None`` becomes the original text at its position.

    Raises:
        ValueError: if ``texts`` and ``originals`` differ in length.
    """
    if len(texts) != len(originals):
        raise ValueError(f"{len(texts)} leaf texts but {len(originals)} originals")
    return [o if t is None else t for t, o in zip(texts, originals)]
