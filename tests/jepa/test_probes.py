"""Linear probes: known R² and balanced accuracy, the length baseline, grouped folds, gaps."""

import numpy as np
import pytest

from harness.report import markdown_table
from jepa.probes import (
    OTHER,
    length_features,
    probe_classification,
    probe_regression,
    probe_table,
    run_probes,
)

N, D, REPOS = 600, 10, 20


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D))
    groups = np.array([f"repo{i % REPOS}" for i in range(N)])
    length = rng.integers(5, 500, size=N).astype(float)  # independent of X
    return rng, X, groups, length


def _folds_respect_groups(result, groups):
    per_group = {}
    for g, f in zip(groups, result.fold):
        per_group.setdefault(g, set()).add(int(f))
    return all(len(fs) == 1 for fs in per_group.values())


def test_regression_recovers_the_true_r2_and_the_length_baseline_is_near_zero(data):
    rng, X, groups, length = data
    w = rng.standard_normal(D)
    signal = X @ w
    noise = rng.standard_normal(N) * signal.std() * 0.5  # true R² = 1 / (1 + 0.25) = 0.8
    y = signal + noise
    res = probe_regression(X, y, groups, log1p=False)
    assert res.metric == "r2" and res.transform == "identity"
    assert res.value == pytest.approx(0.8, abs=0.05)
    assert res.n == N and res.n_groups == REPOS and len(res.fold_values) == 5
    assert abs(res.fold_mean - res.value) < 0.05 and res.fold_std < 0.1
    assert _folds_respect_groups(res, groups)
    base = probe_regression(length_features(length), y, groups, log1p=False)
    assert base.value < 0.05
    x, wt = res.item_scores()
    assert np.sum(x * wt) / np.sum(wt) == pytest.approx(res.value, abs=1e-12)


def test_a_property_carried_by_length_alone_gives_baseline_equal_to_probe(data):
    rng, X, groups, length = data
    z = np.log1p(length)
    X_len = np.column_stack([X, z])  # the embedding encodes the length and nothing else useful
    y = np.expm1(0.8 * z + 0.05 * rng.standard_normal(N))  # a count driven by length
    rows = run_probes(X_len, {"lines": ("regression", y)}, length, groups, n_resamples=0)
    (row,) = rows
    assert row.available and row.transform == "log1p"
    assert row.probe.value > 0.9
    assert row.baseline.value == pytest.approx(row.probe.value, abs=0.02)
    assert row.delta.value == pytest.approx(row.probe.value - row.baseline.value)


def test_groups_are_never_split_across_folds(data):
    rng, X, _, _ = data
    groups = rng.choice([f"g{i}" for i in range(13)], size=N, p=np.linspace(1, 3, 13) / 26)
    y = X[:, 0] + 0.1 * rng.standard_normal(N)
    res = probe_regression(X, y, groups, log1p=False)
    assert _folds_respect_groups(res, groups)
    assert sorted(set(res.fold.tolist())) == [0, 1, 2, 3, 4]
    labels = np.where(X[:, 1] > 0, "int", "str")
    cls = probe_classification(X, labels, groups)
    assert _folds_respect_groups(cls, groups)


def test_classification_balanced_accuracy_and_rare_classes_merged(data):
    rng, X, groups, length = data
    score = X @ rng.standard_normal(D)
    labels = np.where(score > 1.0, "list", np.where(score < -1.0, "None", "bool")).astype(object)
    labels[:3] = "bytes"  # 3 < 5 folds: merged into "other"
    res = probe_classification(X, labels, groups)
    assert res.metric == "balanced_accuracy" and res.merged == ("bytes",)
    assert OTHER not in res.classes and res.n == N - 3  # "other" (3 rows) is still rare: dropped
    assert res.value > 0.85
    assert res.chance == pytest.approx(1 / 3)
    x, w = res.item_scores()
    assert np.sum(x * w) / np.sum(w) == pytest.approx(res.value, abs=1e-12)
    base = probe_classification(length_features(length), labels, groups)
    assert abs(base.value - 1 / 3) < 0.1
    labels[3:10] = "tuple"  # 7 rows: kept as a class of its own; bytes go to an existing "other"
    labels[10:12] = OTHER
    res = probe_classification(X, labels, groups)
    assert "tuple" in res.classes and OTHER in res.classes and res.n == N


def test_run_probes_reports_unavailable_targets_instead_of_raising(data):
    rng, X, groups, length = data
    lines = np.round(np.expm1(np.clip(2.5 + X[:, 0], 0, None)))  # log1p(lines) ~ linear in X
    churn_partial = [None if i % 3 == 0 else float(v) for i, v in enumerate(lines)]
    few_groups = [float(v) if g in ("repo0", "repo1") else None for v, g in zip(lines, groups)]
    rows = run_probes(X, {
        "churn": ("regression", [None] * N),
        "lines": ("regression", lines),
        "churn_partial": ("regression", churn_partial),
        "two_repos": ("regression", few_groups),
        "constant": ("regression", [3.0] * N),
        "one_class": ("classification", ["int"] * (N - 2) + ["str"] * 2),
        "returns": ("classification", np.where(X[:, 2] > 0, "int", "str")),
    }, length, groups, n_resamples=200)
    by = {r.property: r for r in rows}
    assert [r.property for r in rows][:2] == ["churn", "lines"]
    assert not by["churn"].available and "all None" in by["churn"].reason and by["churn"].n == 0
    assert not by["two_repos"].available and "fewer than folds" in by["two_repos"].reason
    assert not by["constant"].available and "constant" in by["constant"].reason
    assert not by["one_class"].available and "two classes" in by["one_class"].reason
    assert by["churn_partial"].available and by["churn_partial"].n == N - N // 3
    lines_row = by["lines"]
    assert lines_row.metric == "r2" and lines_row.probe.value > 0.5
    assert lines_row.probe.low <= lines_row.probe.value <= lines_row.probe.high
    assert lines_row.delta.low <= lines_row.delta.value <= lines_row.delta.high
    assert by["returns"].metric == "balanced_accuracy" and by["returns"].chance == 0.5
    d = lines_row.to_dict()
    assert d["available"] and len(d["probe_folds"]) == 5 and set(d["probe"]) == {"value", "low", "high"}
    assert by["churn"].to_dict()["probe"] is None
    md = markdown_table(probe_table(rows))
    assert "all None" in md and "| lines | r2 |" in md


def test_bad_input_is_refused(data):
    _, X, groups, length = data
    with pytest.raises(ValueError, match="log1p needs targets >= 0"):
        probe_regression(X, -np.ones(N) + np.arange(N), groups)
    with pytest.raises(ValueError, match="at least 5 repositories"):
        probe_regression(X, np.arange(N), ["a", "b"] * (N // 2))
    with pytest.raises(ValueError, match="one target and one repository per row"):
        probe_regression(X, np.arange(N - 1), groups)
    with pytest.raises(ValueError, match="kind must be"):
        run_probes(X, {"x": ("ordinal", np.arange(N))}, length, groups)
    with pytest.raises(ValueError, match="finite counts"):
        length_features([-1.0, 2.0])
