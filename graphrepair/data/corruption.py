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

__all__ = ["corrupt", "corruption_rng", "mask_texts", "unk_replacement", "unmask_texts"]


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


def unk_replacement(masked: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Choose the uncorrupted leaves whose model input becomes ``UNK`` (training-only input noise).

    Word dropout for the vocabulary's ``UNK`` id: at evaluation an uncorrupted leaf whose text is
    out of the vocabulary reaches the model as ``UNK``; a vocabulary built from the training
    split with ``min_freq`` 1 never produces one in training, so ``UNK``'s embedding would stay
    untrained. Each uncorrupted leaf is drawn independently with probability ``rate``; corrupted
    leaves are never drawn (their input is ``MASK``, then a prediction, which is always in the
    vocabulary). Only the model's input changes: a drawn leaf keeps its text and its loss target.

    Args:
        masked: bool ``[L]``, the corrupted leaves (:func:`corrupt`).
        rate: probability that an uncorrupted leaf is drawn, in [0, 1].
        rng: the generator; nothing is drawn from it when ``rate`` is 0, so a run without the
            noise consumes the same random numbers as before the option existed.

    Returns:
        bool ``[L]``, True at the drawn leaves (never where ``masked`` is True).

    Raises:
        ValueError: if ``rate`` is outside [0, 1].
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"UNK replacement rate must be in [0, 1], got {rate}")
    if rate == 0.0:
        return np.zeros(len(masked), dtype=bool)
    return (rng.random(len(masked)) < rate) & ~np.asarray(masked, dtype=bool)


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
