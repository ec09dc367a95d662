"""Linear probes of frozen teacher embeddings (Phase 0.3), with a length-only baseline.

A property is *linearly decodable* from the embeddings when a linear model fitted on some
repositories predicts it on others (Alain & Bengio, "Understanding intermediate layers using
linear classifier probes", ICLR 2017 workshop; Hewitt & Liang, "Designing and Interpreting Probes
with Control Tasks", EMNLP 2019: a probe's score means little without a baseline). Here:

* **regression** (:func:`probe_regression`): standardised features -> ridge with the penalty
  chosen per training fold by efficient leave-one-out over :data:`DEFAULT_ALPHAS`
  (:class:`sklearn.linear_model.RidgeCV`), scored by R² of the pooled out-of-fold predictions.
  Counts (body lines, cyclomatic complexity, churn) are heavy-tailed, so by default the target is
  ``log1p(y)`` and R² is measured in that space (the record's R² values do not say which space);
* **classification** (:func:`probe_classification`): standardised features -> multinomial logistic
  regression with balanced class weights, scored by balanced accuracy (mean per-class recall;
  chance ``1 / classes``) of the pooled out-of-fold predictions;
* **cross-validation**: :class:`sklearn.model_selection.GroupKFold` with the repository as the group
  (no repository is in a training and a test fold at once, so near-copies within a code base do not
  inflate the score). The folds are the deterministic size-balanced assignment of scikit-learn
  (largest repository first into the lightest fold), so they need no seed. Scaling and the penalty
  are fitted inside each training fold (a :class:`sklearn.pipeline.Pipeline`);
* **length baseline** (:func:`length_features`): the same probe on ``[log1p(t), log1p(t)²]`` of
  the teacher's body token count ``t`` alone. Body lines would leak the lines-of-code target; the
  token count is what every mean-pooled embedding could encode without knowing anything else.

:func:`run_probes` runs both for every property and returns :class:`ProbeRow` values, with 95%
bootstrap intervals over functions (:mod:`harness.stats`) of the probe, the baseline and their
paired difference. Functions of one repository are correlated, so these intervals are narrower than
a repository-level resampling would give; the per-fold spread (:attr:`ProbeResult.fold_std`) is the
repository-level view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DEFAULT_ALPHAS", "OTHER", "ProbeResult", "ProbeRow", "length_features",
           "probe_classification", "probe_regression", "probe_table", "run_probes"]

DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 6, 17))
"""Ridge penalties tried per training fold (on standardised features): ``1e-2 .. 1e6``, 2 per decade."""
OTHER = "other"
"""The class that classes with fewer examples than folds are merged into."""


@dataclass(frozen=True, eq=False)
class ProbeResult:
    """Out-of-fold predictions of one probe and their score.

    Attributes:
        metric: ``"r2"`` or ``"balanced_accuracy"``.
        value: the metric over the pooled out-of-fold predictions of all ``n`` rows.
        fold_values: the metric within each test fold.
        n: rows used; n_groups: distinct repositories among them; folds: number of folds.
        target: ``[n]`` what was predicted: the (transformed) regression target, float64, or the
            class labels after merging, str.
        predictions: ``[n]`` out-of-fold predictions, same kind as ``target``.
        fold: ``[n]`` int, the fold in which each row was a test row.
        transform: ``"log1p"`` / ``"identity"`` (regression) or ``"labels"`` (classification).
        hyperparameters: per fold, the ridge penalty chosen (regression) or the logistic ``C``.
        classes: the class labels after merging (classification), else ``()``.
        merged: the classes merged into :data:`OTHER` (classification), else ``()``.
    """

    metric: str
    value: float
    fold_values: tuple[float, ...]
    n: int
    n_groups: int
    folds: int
    target: np.ndarray = field(repr=False)
    predictions: np.ndarray = field(repr=False)
    fold: np.ndarray = field(repr=False)
    transform: str
    hyperparameters: tuple[float, ...]
    classes: tuple[str, ...] = ()
    merged: tuple[str, ...] = ()

    @property
    def fold_mean(self) -> float:
        """Mean of :attr:`fold_values`."""
        return float(np.mean(self.fold_values))

    @property
    def fold_std(self) -> float:
        """Standard deviation (n - 1) of :attr:`fold_values`."""
        return float(np.std(self.fold_values, ddof=1)) if len(self.fold_values) > 1 else float("nan")

    @property
    def chance(self) -> float | None:
        """Balanced accuracy of a constant or random classifier, ``1 / classes``; ``None`` for R²."""
        return 1.0 / len(self.classes) if self.classes else None

    def item_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x [n], w [n])`` with ``value == Σ w x / Σ w``: the metric as a weighted mean over rows.

        R²: ``w_i = (y_i - ȳ)²``, ``x_i = 1 - e_i² / w_i`` (0 where ``w_i = 0``), so
        ``Σ w x / Σ w = 1 - Σ e² / Σ (y - ȳ)²``. Balanced accuracy: ``x_i`` = correct,
        ``w_i = 1 / n_{class(i)}``. This is the form :func:`harness.stats.bootstrap_ci` resamples
        (with ``ȳ`` and the class sizes of the full sample).
        """
        if self.metric == "r2":
            w = (self.target - self.target.mean()) ** 2
            e2 = (self.target - self.predictions) ** 2
            x = np.divide(w - e2, w, out=np.zeros_like(w), where=w > 0)
            return x, w
        _, inverse, counts = np.unique(self.target, return_inverse=True, return_counts=True)
        return (self.target == self.predictions).astype(np.float64), 1.0 / counts[inverse]


def length_features(length: Sequence[float]) -> np.ndarray:
    """``[N, 2]`` length-only features ``[log1p(t), log1p(t)²]`` of body token counts ``t``.

    Raises:
        ValueError: not 1-D, NaN/inf or negative counts.
    """
    t = np.asarray(length, dtype=np.float64)
    if t.ndim != 1 or not np.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"length must be a 1-D array of finite counts >= 0 (body tokens), got shape "
                         f"{t.shape}, min {np.nanmin(t) if t.size else None}")
    z = np.log1p(t)
    return np.stack([z, z * z], axis=1)


def _check(X: np.ndarray, y: Sequence, groups: Sequence, folds: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    groups = np.asarray([str(g) for g in groups], dtype=object)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array [N, D], got shape {X.shape}")
    if len(y) != len(X) or len(groups) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} and groups {len(groups)}; "
                         f"give one target and one repository per row")
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or infinite values; drop or recompute those rows first")
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    n_groups = len(set(groups))
    if n_groups < folds:
        raise ValueError(f"GroupKFold with {folds} folds needs at least {folds} repositories, got "
                         f"{n_groups}; lower folds or add repositories")
    return X, groups


def _folds(groups: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold

    return list(GroupKFold(n_splits=folds).split(np.zeros((len(groups), 1)), groups=groups))


def probe_regression(X: np.ndarray, y: Sequence[float], groups: Sequence[str], *, folds: int = 5,
                     log1p: bool = True, alphas: Sequence[float] = DEFAULT_ALPHAS) -> ProbeResult:
    """Repository-grouped cross-validated ridge probe of a numeric property; R² out of fold.

    Per fold: ``Pipeline(StandardScaler(), RidgeCV(alphas))`` fitted on the training repositories
    (penalty by efficient leave-one-out within the training fold), predicted on the test ones.

    Args:
        X: ``[N, D]`` features (embeddings, or :func:`length_features`).
        y: ``[N]`` target values, finite (counts ``>= 0`` when ``log1p``).
        groups: ``[N]`` repository of each row.
        folds: number of :class:`~sklearn.model_selection.GroupKFold` folds.
        log1p: fit and score ``log1p(y)`` (default: counts are heavy-tailed) instead of ``y``.
        alphas: ridge penalties to choose from.

    Returns:
        A :class:`ProbeResult` with ``metric="r2"``.

    Raises:
        ValueError: bad shapes, NaN/inf, negative ``y`` with ``log1p``, a constant target (R² is
            undefined), fewer repositories than folds.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, groups = _check(X, y, groups, folds)
    y = np.asarray(y, dtype=np.float64)
    if not np.isfinite(y).all():
        raise ValueError("y holds NaN or infinite values; leave those rows out first")
    if log1p:
        if (y < 0).any():
            raise ValueError(f"log1p needs targets >= 0 (counts), found min {y.min()}; "
                             f"pass log1p=False")
        y = np.log1p(y)
    if np.ptp(y) == 0:
        raise ValueError(f"the target is constant ({y[0]}) on all {len(y)} rows: R² is undefined")
    pred = np.empty_like(y)
    fold = np.empty(len(y), dtype=np.int64)
    chosen, scores = [], []
    for f, (train, test) in enumerate(_folds(groups, folds)):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=tuple(alphas)))
        model.fit(X[train], y[train])
        pred[test] = model.predict(X[test])
        fold[test] = f
        chosen.append(float(model[-1].alpha_))
        scores.append(float(r2_score(y[test], pred[test])) if np.ptp(y[test]) > 0 else float("nan"))
    return ProbeResult(metric="r2", value=float(r2_score(y, pred)), fold_values=tuple(scores),
                       n=len(y), n_groups=len(set(groups)), folds=folds, target=y, predictions=pred,
                       fold=fold, transform="log1p" if log1p else "identity",
                       hyperparameters=tuple(chosen))


def _merge_rare(labels: np.ndarray, folds: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Merge classes with fewer than ``folds`` rows into :data:`OTHER`; drop a still-rare OTHER.

    Returns:
        ``(labels, keep, merged)``: merged labels of the kept rows, ``[N]`` bool mask of kept rows,
        the names of the classes merged into :data:`OTHER`.
    """
    names, counts = np.unique(labels, return_counts=True)
    rare = tuple(str(c) for c, m in zip(names, counts) if m < folds and c != OTHER)
    merged = np.where(np.isin(labels, rare), OTHER, labels).astype(object)
    keep = np.ones(len(labels), dtype=bool)
    if (merged == OTHER).sum() < folds:
        keep = merged != OTHER
    return merged[keep], keep, rare


def probe_classification(X: np.ndarray, y: Sequence[str], groups: Sequence[str], *, folds: int = 5,
                         C: float = 1.0, max_iter: int = 2000) -> ProbeResult:
    """Repository-grouped cross-validated logistic probe of a class; balanced accuracy out of fold.

    Classes with fewer than ``folds`` rows are merged into :data:`OTHER` (they could not appear in
    every training fold); if :data:`OTHER` itself still has fewer than ``folds`` rows those rows are
    dropped (``n`` says how many remain). Per fold: ``Pipeline(StandardScaler(),
    LogisticRegression(C, class_weight="balanced"))`` (lbfgs, multinomial for more than two
    classes). A training fold that holds one class only predicts that class. Classes absent from a
    training fold are never predicted in its test fold and count with recall 0 there.

    Args:
        X: ``[N, D]`` features.
        y: ``[N]`` class labels (compared as str).
        groups: ``[N]`` repository of each row.
        folds: number of folds.
        C: inverse L2 penalty on the standardised features.
        max_iter: lbfgs iterations (a :class:`~sklearn.exceptions.ConvergenceWarning` says if
            too few).

    Returns:
        A :class:`ProbeResult` with ``metric="balanced_accuracy"``.

    Raises:
        ValueError: bad shapes, NaN/inf in ``X``, fewer than two classes after merging, fewer
            repositories than folds.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, recall_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, groups = _check(X, y, groups, folds)
    labels, keep, rare = _merge_rare(np.asarray([str(v) for v in y], dtype=object), folds)
    X, groups = X[keep], groups[keep]
    classes = tuple(sorted(set(labels)))
    if len(classes) < 2:
        raise ValueError(f"classification needs at least two classes with >= {folds} rows each, got "
                         f"{classes} after merging the rare ones")
    if len(set(groups)) < folds:
        raise ValueError(f"after dropping rare classes only {len(set(groups))} repositories remain, "
                         f"fewer than folds={folds}")
    pred = np.empty(len(labels), dtype=object)
    fold = np.empty(len(labels), dtype=np.int64)
    scores = []
    for f, (train, test) in enumerate(_folds(groups, folds)):
        seen = np.unique(labels[train])
        if len(seen) == 1:
            pred[test] = seen[0]
        else:
            model = make_pipeline(StandardScaler(), LogisticRegression(
                C=C, class_weight="balanced", max_iter=max_iter))
            model.fit(X[train], labels[train])
            pred[test] = model.predict(X[test])
        fold[test] = f
        # mean recall over the classes present in this test fold (= balanced accuracy there)
        truth = labels[test].astype(str)
        scores.append(float(recall_score(truth, pred[test].astype(str), labels=np.unique(truth),
                                         average="macro", zero_division=0)))
    return ProbeResult(metric="balanced_accuracy",
                       value=float(balanced_accuracy_score(labels.astype(str), pred.astype(str))),
                       fold_values=tuple(scores), n=len(labels), n_groups=len(set(groups)),
                       folds=folds, target=labels.astype(str), predictions=pred.astype(str),
                       fold=fold, transform="labels", hyperparameters=(C,) * folds,
                       classes=classes, merged=rare)


@dataclass(frozen=True, eq=False)
class ProbeRow:
    """One property's probe against its length-only baseline (a row of the Phase 0.3 table).

    Attributes:
        property: the property's name; kind: ``"regression"`` or ``"classification"``.
        metric: ``"r2"`` or ``"balanced_accuracy"``.
        probe, baseline: the pooled out-of-fold metric of the embedding probe and of the length
            probe, with 95% bootstrap bounds over functions (bounds ``None`` without resampling).
        delta: ``probe - baseline`` with its 95% paired bootstrap interval (same functions).
        n: rows with a value; n_groups: their repositories; folds: folds.
        transform: ``"log1p"``/``"identity"`` (regression target), ``"labels"`` (classes).
        chance: ``1 / classes`` for balanced accuracy, else ``None``.
        reason: why the row is not available (``None`` when it is).
        results: ``(probe, baseline)`` :class:`ProbeResult` values with the out-of-fold
            predictions (``None`` when not available).
    """

    property: str
    kind: str
    metric: str
    probe: Any = None
    baseline: Any = None
    delta: Any = None
    n: int = 0
    n_groups: int = 0
    folds: int = 0
    transform: str = ""
    chance: float | None = None
    reason: str | None = None
    results: tuple[ProbeResult, ProbeResult] | None = field(default=None, repr=False)

    @property
    def available(self) -> bool:
        """Whether the property could be probed."""
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        """The row for ``report.json`` (Estimates as ``{"value", "low", "high"}``; no arrays)."""
        out: dict[str, Any] = {
            "property": self.property, "kind": self.kind, "metric": self.metric,
            "available": self.available, "reason": self.reason, "n": self.n,
            "n_groups": self.n_groups, "folds": self.folds, "transform": self.transform,
            "chance": self.chance,
        }
        for name in ("probe", "baseline", "delta"):
            value = getattr(self, name)
            out[name] = value.to_dict() if value is not None else None
        if self.results is not None:
            probe, base = self.results
            out["probe_folds"] = list(probe.fold_values)
            out["baseline_folds"] = list(base.fold_values)
            out["probe_hyperparameters"] = list(probe.hyperparameters)
            out["merged_classes"] = list(probe.merged)
        return out


_METRIC = {"regression": "r2", "classification": "balanced_accuracy"}


def _present(values: Sequence) -> np.ndarray:
    """``[N]`` bool: the value is neither ``None`` nor a float NaN."""
    return np.array([v is not None and not (isinstance(v, float) and np.isnan(v)) for v in values],
                    dtype=bool)


def run_probes(X: np.ndarray, targets: Mapping[str, tuple[str, Sequence]], length: Sequence[float],
               groups: Sequence[str], *, folds: int = 5, log1p: bool = True, C: float = 1.0,
               n_resamples: int = 9999, seed: int = 0) -> list[ProbeRow]:
    """Probe every property from the embeddings and from length alone, on the same rows and folds.

    For each property the rows whose value is ``None``/NaN are left out; a property with no value
    at all (e.g. churn of a corpus without git history), with fewer repositories than ``folds``
    among its rows, with a constant value or a single class comes back as a row with ``reason``
    set rather than raising.

    Args:
        X: ``[N, D]`` embeddings (one layer, mean-pooled bodies).
        targets: property name -> ``(kind, values [N])``, kind ``"regression"`` (numbers, e.g.
            body lines, complexity, churn) or ``"classification"`` (labels, e.g. return kind).
        length: ``[N]`` teacher body token counts (the baseline's only input).
        groups: ``[N]`` repository of each row.
        folds: GroupKFold folds.
        log1p: regression targets as ``log1p`` (default) or raw.
        C: logistic inverse penalty.
        n_resamples: bootstrap resamples for the intervals (:func:`harness.stats.bootstrap_ci`
            and :func:`~harness.stats.paired_bootstrap_ci`); 0 = no intervals.
        seed: bootstrap seed.

    Returns:
        One :class:`ProbeRow` per property, in the order of ``targets``.

    Raises:
        ValueError: shapes that disagree, NaN/inf in ``X`` or ``length``, an unknown kind,
            negative counts with ``log1p``.
    """
    from harness.stats import Estimate, bootstrap_ci, paired_bootstrap_ci

    X = np.asarray(X)
    groups = np.asarray([str(g) for g in groups], dtype=object)
    base_X = length_features(length)
    if X.ndim != 2 or len(X) != len(groups) or len(base_X) != len(groups):
        raise ValueError(f"X {np.shape(X)}, length {len(base_X)} and groups {len(groups)} must have "
                         f"one row per function")
    rows = []
    for name, (kind, values) in targets.items():
        if kind not in _METRIC:
            raise ValueError(f"target {name!r}: kind must be 'regression' or 'classification', "
                             f"got {kind!r}")
        if len(values) != len(X):
            raise ValueError(f"target {name!r} has {len(values)} values for {len(X)} rows")
        row = {"property": name, "kind": kind, "metric": _METRIC[kind], "folds": folds}
        keep = _present(values)
        kept_groups = groups[keep]
        n_groups = len(set(kept_groups))
        reason = None
        if not keep.any():
            reason = "no values (all None)"
        elif n_groups < folds:
            reason = f"{n_groups} repositories have values, fewer than folds={folds}"
        else:
            vals = [v for v, k in zip(values, keep) if k]
            if kind == "regression" and np.ptp(np.asarray(vals, dtype=np.float64)) == 0:
                reason = f"constant value {vals[0]} on all {len(vals)} rows"
            elif kind == "classification":
                labels, kept, _ = _merge_rare(np.asarray([str(v) for v in vals], dtype=object), folds)
                if len(set(labels)) < 2:
                    reason = f"fewer than two classes with >= {folds} rows: {sorted(set(labels))}"
                elif len(set(kept_groups[kept])) < folds:
                    reason = (f"{len(set(kept_groups[kept]))} repositories have a class with >= "
                              f"{folds} rows, fewer than folds={folds}")
        if reason is not None:
            rows.append(ProbeRow(**row, n=int(keep.sum()), n_groups=n_groups, reason=reason))
            continue
        if kind == "regression":
            probe = probe_regression(X[keep], vals, kept_groups, folds=folds, log1p=log1p)
            base = probe_regression(base_X[keep], vals, kept_groups, folds=folds, log1p=log1p)
        else:
            probe = probe_classification(X[keep], vals, kept_groups, folds=folds, C=C)
            base = probe_classification(base_X[keep], vals, kept_groups, folds=folds, C=C)
        x_p, w = probe.item_scores()
        x_b, _ = base.item_scores()
        if n_resamples > 0:
            est_p = bootstrap_ci(x_p, weights=w, n_resamples=n_resamples, seed=seed)
            est_b = bootstrap_ci(x_b, weights=w, n_resamples=n_resamples, seed=seed)
            delta = paired_bootstrap_ci(x_p, x_b, weights=w, n_resamples=n_resamples, seed=seed)
            # the weighted mean equals the metric up to round-off; report sklearn's value
            est_p = Estimate(probe.value, low=est_p.low, high=est_p.high)
            est_b = Estimate(base.value, low=est_b.low, high=est_b.high)
            delta = Estimate(probe.value - base.value, low=delta.low, high=delta.high)
        else:
            est_p, est_b = Estimate(probe.value), Estimate(base.value)
            delta = Estimate(probe.value - base.value)
        rows.append(ProbeRow(**row, probe=est_p, baseline=est_b, delta=delta, n=probe.n,
                             n_groups=probe.n_groups, transform=probe.transform,
                             chance=probe.chance, results=(probe, base)))
    return rows


def probe_table(rows: Sequence[ProbeRow], *, title: str = "Linear probes (Phase 0.3)"):
    """The rows as a :class:`harness.report.Table` (probe, length baseline, difference, folds).

    Unavailable rows show their reason in the last column. Intervals: 95% bootstrap over the
    functions of each row (paired for the difference).
    """
    from harness.report import NUMBER, Format, Interval, Table

    cells = []
    for r in rows:
        if not r.available:
            cells.append([r.property, r.metric, "n/a", "n/a", "n/a", "", "", r.n, r.n_groups, r.reason])
            continue
        probe = r.results[0]
        target = f"{r.transform}" + (f", merged {','.join(probe.merged)}" if probe.merged else "")
        cells.append([r.property, r.metric, r.probe, r.baseline, r.delta,
                      f"{probe.fold_mean:.3f} ± {probe.fold_std:.3f}",
                      "" if r.chance is None else f"{r.chance:.3f}", r.n, r.n_groups, target])
    ns = tuple(sorted({r.n for r in rows if r.available})) or (0,)
    folds = max((r.folds for r in rows), default=5)
    return Table(
        title=title,
        columns=["property", "metric", "probe", "length baseline", "probe - baseline",
                 "per-fold mean ± sd", "chance", "n", "repositories", "target / note"],
        rows=cells,
        fmt=NUMBER,
        formats={"probe - baseline": Format(decimals=3, signed=True)},
        interval=Interval("bootstrap", ns if len(ns) > 1 else ns[0], "functions"),
        caption=(f"Out-of-fold scores, {folds}-fold cross-validation grouped by repository (no "
                 f"repository in training and test at once); R² of ridge on standardised "
                 f"embeddings, balanced accuracy of class-balanced logistic regression. The "
                 f"baseline sees only [log1p(t), log1p(t)^2] of the body token count t; the difference "
                 f"has a paired interval (the same resampled functions for both). Functions "
                 f"of one repository are correlated: the bootstrap intervals over functions are "
                 f"optimistic; the per-fold spread is over repositories."),
    )
