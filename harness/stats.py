"""Confidence intervals: Student t over seeds, bootstrap (paired or not) over items.

Two sources of variance, reported separately (DESIGN.md "Metrics"):

* over seeds (independent runs): :func:`mean_ci`, mean and Student-t 95% half-width;
* over items (programs, queries) of one run: :func:`bootstrap_ci` (a mean over items) and
  :func:`paired_bootstrap_ci` (the difference of two rows measured on the same items, both
  resampled with the same indices), through :func:`scipy.stats.bootstrap` with a fixed seed so a
  report is reproducible (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993; the paired
  design as in Koehn, EMNLP 2004).

Results are :class:`Estimate` values, which :mod:`harness.report` shows in a table cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BOOTSTRAP_METHOD", "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "Estimate", "bootstrap_ci",
           "mean_ci", "paired_bootstrap_ci", "t_quantile_975"]

BOOTSTRAP_RESAMPLES = 9999
"""Bootstrap resamples drawn by :func:`bootstrap_ci` / :func:`paired_bootstrap_ci` by default."""
BOOTSTRAP_METHOD = "percentile"
"""Default interval method of :func:`scipy.stats.bootstrap` (``"percentile"``, ``"basic"`` or ``"BCa"``).

Percentile (the 2.5th and 97.5th percentiles of the resampled statistic, as in Koehn 2004): defined
for every sample, where BCa is undefined (NaN) when its jackknife is degenerate, and about twice as
fast on tens of thousands of items."""
BOOTSTRAP_SEED = 0
"""Default seed of the bootstrap resampling: the same data always gives the same interval."""


@dataclass(frozen=True)
class Estimate:
    """A table cell: a value with its 95% interval, shown by its column's :class:`Format`.

    Give either ``half_width`` (a symmetric interval: Student t over seeds, shown ``± hw``) or
    ``low`` and ``high`` (bounds: bootstrap over items, shown ``[low, high]``), or neither (n = 1).
    All in the unit of ``value`` (a fraction for :data:`PERCENT` columns).
    """

    value: float
    half_width: float | None = None
    low: float | None = None
    high: float | None = None

    def render(self, fmt: Any) -> str:
        """The cell text in format ``fmt`` (a :class:`harness.report.Format`)."""
        if self.half_width is not None:
            return fmt.ci(self.value, self.half_width)
        return fmt.interval(self.value, self.low, self.high)

    def to_dict(self) -> dict[str, float | None]:
        """``{"value", "low", "high"}`` (bounds from the half-width when that is given)."""
        low, high = self.low, self.high
        if self.half_width is not None:
            low, high = self.value - self.half_width, self.value + self.half_width
        return {"value": self.value, "low": low, "high": high}


def t_quantile_975(df: int) -> float:
    """``t_{0.975}`` of Student's t with ``df`` degrees of freedom (:func:`scipy.stats.t.ppf`).

    Raises:
        ValueError: ``df < 1``.
    """
    if df < 1:
        raise ValueError(f"Student t needs df >= 1, got {df}")
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and half-width of its two-sided 95% confidence interval (Student t over ``values``).

    The interval is ``mean ± t_{0.975, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation
    (n - 1 in the denominator): the spread over independent seeds, not over programs.

    Args:
        values: one number per seed (NaN values are left out).

    Returns:
        ``(mean, half_width)``; ``half_width`` is ``None`` when fewer than two values are left
        (n = 1 has no interval); ``(nan, None)`` when none is.
    """
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not xs:
        return float("nan"), None
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, t_quantile_975(len(xs) - 1) * math.sqrt(var / len(xs))


def _weighted_mean(x, w, axis=-1):
    import numpy as np

    return np.sum(x * w, axis=axis) / np.sum(w, axis=axis)


def _weighted_mean_difference(a, b, w, axis=-1):
    import numpy as np

    return np.sum((a - b) * w, axis=axis) / np.sum(w, axis=axis)


def _bootstrap(samples: list, statistic, paired: bool, *, n_resamples: int, method: str,
               seed: int) -> tuple[float | None, float | None]:
    """Bounds of the 95% bootstrap interval of ``statistic`` over the items of ``samples``."""
    import numpy as np
    from scipy.stats import bootstrap

    n = len(samples[0])
    res = bootstrap(tuple(samples), statistic, n_resamples=n_resamples, vectorized=True,
                    paired=paired, method=method, confidence_level=0.95,
                    batch=max(1, 2**21 // n),  # bounds memory: ~2M resampled items at a time
                    rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):
        raise RuntimeError(f"the {method} bootstrap interval of {n} items could not be computed "
                           f"(scipy returned NaN); use method='percentile'")
    return low, high


def _items(name: str, values: Sequence[float], weights: Sequence[float] | None, n: int | None = None):
    """``values`` (and ``weights``, default 1) as float arrays, validated."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if n is not None and len(x) != n:
        raise ValueError(f"paired samples must have one value per item: {name} has {len(x)}, "
                         f"the other {n}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: {int((~np.isfinite(x)).sum())} of {len(x)} values are NaN or "
                         f"infinite; leave those items out (or give them weight 0) first")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(x):
        raise ValueError(f"weights: {len(w)} values for {len(x)} items; give one weight per item")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and >= 0")
    return x, w


def bootstrap_ci(values: Sequence[float], *, weights: Sequence[float] | None = None,
                 n_resamples: int = BOOTSTRAP_RESAMPLES, method: str = BOOTSTRAP_METHOD,
                 seed: int = BOOTSTRAP_SEED) -> Estimate:
    """The mean of ``values`` over items with its 95% bootstrap interval (items resampled).

    The statistic is the weighted mean ``sum(w * x) / sum(w)`` (``w = 1``: the plain mean); with
    ``x = correct_i / total_i`` and ``w = total_i`` it is a micro-average (a ratio of sums) such as
    an accuracy over leaves pooled across programs. Items of weight 0 are left out. Resampling by
    :func:`scipy.stats.bootstrap` (``n_resamples`` resamples, interval ``method``, generator seeded
    with ``seed``: the same data gives the same interval).

    Args:
        values: ``[n]`` one number per item (program, query).
        weights: ``[n]`` non-negative weight per item (default: all 1).
        n_resamples, method, seed: see :data:`BOOTSTRAP_RESAMPLES`, :data:`BOOTSTRAP_METHOD`,
            :data:`BOOTSTRAP_SEED`.

    Returns:
        ``Estimate(mean, low=..., high=...)``; bounds ``None`` with fewer than two items (no
        interval), equal to the mean when every item has the same value.

    Raises:
        ValueError: NaN/infinite values, weights of the wrong length or negative, no item of
            positive weight.
        RuntimeError: scipy could not compute the interval (possible with ``"BCa"``).
    """
    x, w = _items("values", values, weights)
    keep = w > 0
    x, w = x[keep], w[keep]
    if not len(x):
        raise ValueError("bootstrap_ci needs at least one item of positive weight, got none")
    mean = float(_weighted_mean(x, w))
    if len(x) < 2:
        return Estimate(mean)
    if (x == x[0]).all():
        return Estimate(mean, low=mean, high=mean)
    low, high = _bootstrap([x, w], _weighted_mean, True, n_resamples=n_resamples, method=method,
                           seed=seed)
    return Estimate(mean, low=low, high=high)


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], *,
                        weights: Sequence[float] | None = None,
                        n_resamples: int = BOOTSTRAP_RESAMPLES, method: str = BOOTSTRAP_METHOD,
                        seed: int = BOOTSTRAP_SEED) -> Estimate:
    """``mean(a) - mean(b)`` over the same items, with its 95% *paired* bootstrap interval.

    ``a`` and ``b`` are two rows (a model and a baseline) measured on the same items; each
    bootstrap resample draws item indices once and uses them for both rows, so the spread of the
    difference excludes the variance the two rows share (Koehn, "Statistical Significance Tests for
    Machine Translation Evaluation", EMNLP 2004). Means are weighted as in :func:`bootstrap_ci`
    (the same ``weights`` for both rows); items of weight 0 are left out. Resampling by
    :func:`scipy.stats.bootstrap` with ``paired=True``.

    Args:
        a, b: ``[n]`` one number per item, in the same item order.
        weights: ``[n]`` non-negative weight per item (default: all 1).
        n_resamples, method, seed: see :data:`BOOTSTRAP_RESAMPLES`, :data:`BOOTSTRAP_METHOD`,
            :data:`BOOTSTRAP_SEED`.

    Returns:
        ``Estimate(difference, low=..., high=...)`` in the unit of ``a``; bounds ``None`` with
        fewer than two items, equal to the difference when ``a - b`` is the same on every item.

    Raises:
        ValueError: rows of different lengths, NaN/infinite values, bad weights, no item of
            positive weight.
        RuntimeError: scipy could not compute the interval (possible with ``"BCa"``).
    """
    x, w = _items("a", a, weights)
    y, _ = _items("b", b, None, n=len(x))
    keep = w > 0
    x, y, w = x[keep], y[keep], w[keep]
    if not len(x):
        raise ValueError("paired_bootstrap_ci needs at least one item of positive weight, got none")
    diff = float(_weighted_mean_difference(x, y, w))
    if len(x) < 2:
        return Estimate(diff)
    if ((x - y) == (x[0] - y[0])).all():
        return Estimate(diff, low=diff, high=diff)
    low, high = _bootstrap([x, y, w], _weighted_mean_difference, True, n_resamples=n_resamples,
                           method=method, seed=seed)
    return Estimate(diff, low=low, high=high)
