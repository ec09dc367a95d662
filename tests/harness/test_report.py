"""harness.report: schema of report.json, Markdown tables, atomic writes."""

import json
import math

import pytest

from harness.io import atomic_write_text
from harness.report import (
    COSINE,
    NUMBER,
    PERCENT,
    POINTS,
    SCHEMA_VERSION,
    Estimate,
    Format,
    Interval,
    Table,
    bootstrap_ci,
    ci_cell,
    markdown_table,
    mean_ci,
    paired_bootstrap_ci,
    t_quantile_975,
    write_report,
)


def test_markdown_table_formats_fractions_and_nan():
    t = Table("T", ["a", "b"], [["x", 0.1234], ["y", math.nan]], caption="cap")
    md = markdown_table(t)
    assert "| x | 12.3% |" in md and "| y | n/a |" in md and md.rstrip().endswith("cap")


def test_markdown_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="has 1 cells, expected 2"):
        markdown_table(Table("T", ["a", "b"], [["x"]]))


def test_write_report_schema(tmp_path):
    j, m = write_report(tmp_path, title="R", results={"acc": 0.5, "bad": math.nan},
                        tables=[Table("T", ["a"], [[1]])], config={"k": 1}, notes=["note"])
    data = json.loads(j.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["results"] == {"acc": 0.5, "bad": None}
    assert data["config"] == {"k": 1} and "python" in data["machine"] and data["git_commit"]
    text = m.read_text()
    assert text.startswith("# R") and "note" in text and "| 1 |" in text


def test_atomic_write_leaves_old_content_on_failure(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")

    class Boom(Exception):
        pass

    from harness.io import atomic_write

    def bad(f):
        f.write(b"partial")
        raise Boom

    with pytest.raises(Boom):
        atomic_write(p, bad)
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind


def test_mean_ci_is_student_t_over_seeds():
    mean, hw = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and hw == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)  # t_{0.975,2} * s / sqrt(n), s = 1
    assert mean_ci([0.5]) == (0.5, None)  # n = 1: no interval
    assert mean_ci([0.4, math.nan, 0.4]) == (0.4, 0.0)
    assert math.isnan(mean_ci([])[0]) and mean_ci([])[1] is None
    # beyond the table: scipy, against t_{0.975, 40} = 2.021 and t_{0.975, 120} = 1.980
    assert t_quantile_975(40) == pytest.approx(2.021, abs=1e-3)
    assert t_quantile_975(120) == pytest.approx(1.980, abs=1e-3)
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile_975(0)


def test_ci_cell_shows_percent_and_signed_points():
    assert ci_cell(0.8224, 0.0131) == "82.2% ± 1.3"
    assert ci_cell(0.5, None) == "50.0%"
    assert ci_cell(-12.43, 0.5, percent=False, signed=True) == "-12.4 ± 0.5"
    assert ci_cell(math.nan, None) == "n/a" and ci_cell(None, None) == "n/a"


def test_t_quantiles_are_the_published_ones():
    published = {1: 12.706, 2: 4.303, 5: 2.571, 10: 2.228, 30: 2.042, 120: 1.980}
    for df, value in published.items():
        assert t_quantile_975(df) == pytest.approx(value, abs=5e-4)
    assert t_quantile_975(10**6) == pytest.approx(1.960, abs=1e-3)
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile_975(0)


def test_columns_have_their_own_formats():
    """Rank@k as %, MRR plain, cosine with 3 decimals, differences in signed points."""
    t = Table("Retrieval", ["Model", "Rank@1", "MRR", "cosine", "gain"],
              [["student", 0.2345, 0.41237, 0.8, 1.94], ["random", 0.0001, math.nan, -0.01, -0.5]],
              formats={"MRR": NUMBER, "cosine": COSINE, "gain": POINTS})
    md = markdown_table(t)
    assert "| student | 23.4% | 0.412 | 0.800 | +1.9 pp |" in md
    assert "| random | 0.0% | n/a | -0.010 | -0.5 pp |" in md
    legacy = Table("T", ["a", "b"], [[0.5, 0.25]], fmt="{:.2f}", formats={"b": "{:.0%}"})
    assert "| 0.50 | 25% |" in markdown_table(legacy)  # str.format patterns still work
    with pytest.raises(ValueError, match=r"formats given for unknown columns \['MMR'\]"):
        markdown_table(Table("T", ["MRR"], [[0.1]], formats={"MMR": NUMBER}))


def test_estimate_cells_show_their_interval_in_the_column_format():
    t = Table("T", ["Model", "Rank@1", "MRR", "diff"],
              [["seeds", Estimate(0.8224, half_width=0.0131), Estimate(0.41237, half_width=0.0104),
                Estimate(0.0194, low=-0.002, high=0.041)],
               ["n=1", Estimate(0.5), Estimate(0.25), Estimate(math.nan)]],
              formats={"MRR": NUMBER, "diff": Format(scale=100, decimals=1, unit=" pp", signed=True)})
    md = markdown_table(t)
    assert "| seeds | 82.2% ± 1.3 | 0.412 ± 0.010 | +1.9 pp [-0.2, +4.1] |" in md
    assert "| n=1 | 50.0% | 0.250 | n/a |" in md
    assert Estimate(0.5, half_width=0.1).to_dict() == {"value": 0.5, "low": 0.4, "high": 0.6}
    with pytest.raises(ValueError, match="needs a Format"):
        markdown_table(Table("T", ["a"], [[Estimate(0.5)]], fmt="{:.1%}"))
    assert PERCENT.ci(0.8224, 0.0131) == ci_cell(0.8224, 0.0131)


def test_every_table_says_which_interval_it_shows():
    def shown(interval):
        return markdown_table(Table("T", ["a"], [[0.5]], interval=interval, caption="cap"))

    md = shown(Interval.student_t(3))
    assert "Intervals: mean ± 95% CI, Student t over n=3 seeds." in md and md.rstrip().endswith("cap")
    assert "Intervals: n=1 seed: no confidence interval." in shown(Interval.student_t(1))
    assert "n=1 query: no confidence interval" in shown(Interval.bootstrap(1, "queries"))
    assert "Student t over n=2/3 seeds; none where n=1" in shown(Interval.student_t([3, 1, 2, 3]))
    paired = shown(Interval.bootstrap(200, "programs", paired=True))
    assert ("95% CI [low, high], paired bootstrap over n=200 programs (the same resampled items for "
            "both rows compared; percentile, 9999 resamples, seed 0)") in paired
    assert "bootstrap over n=5000 queries (BCa, 999 resamples, seed 0)" in shown(
        Interval.bootstrap(5000, "queries", method="BCa", n_resamples=999))
    assert "Intervals" not in shown(None)
    with pytest.raises(ValueError, match="unknown interval method"):
        Interval("wald", 3, "seeds")


def test_bootstrap_ci_of_a_mean_over_items():
    import numpy as np
    from scipy.stats import bootstrap

    x = np.random.default_rng(1).normal(0.5, 0.2, 300)
    est = bootstrap_ci(x)
    ref = bootstrap(
        (x,), np.mean, n_resamples=9999, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    assert est.value == pytest.approx(x.mean())
    assert (est.low, est.high) == pytest.approx((ref.low, ref.high), abs=2e-3)
    assert est.low < x.mean() < est.high
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))  # the normal approximation, roughly
    assert est.high - est.low == pytest.approx(2 * half, rel=0.1)
    assert bootstrap_ci(x) == est  # a fixed seed: reproducible
    assert bootstrap_ci(x, seed=1) != est


def test_weighted_bootstrap_is_a_micro_average():
    """Leaves restored / leaves corrupted, pooled over programs: weight = corrupted leaves."""
    restored, masked = [3, 0, 5, 1, 8], [4, 2, 5, 3, 10]
    est = bootstrap_ci([r / m for r, m in zip(restored, masked)], weights=masked)
    assert est.value == pytest.approx(sum(restored) / sum(masked))
    assert est.low <= est.value <= est.high
    with_empty = bootstrap_ci([0.75, 0.0, 1.0, 1 / 3, 0.8, 0.0], weights=[4, 2, 5, 3, 10, 0])
    assert with_empty == est  # an item of weight 0 (nothing corrupted) is left out


def test_paired_bootstrap_resamples_both_rows_with_the_same_items():
    import numpy as np

    rng = np.random.default_rng(2)
    difficulty = rng.uniform(0, 1, 200)  # shared by both rows: paired resampling cancels it
    a = difficulty + 0.05 + rng.normal(0, 0.02, 200)
    b = difficulty + rng.normal(0, 0.02, 200)
    paired = paired_bootstrap_ci(a, b)
    assert paired.value == pytest.approx(a.mean() - b.mean())
    assert paired.low > 0.04 and paired.high < 0.06  # sd of the differences ~0.03
    unpaired = (bootstrap_ci(a).high - bootstrap_ci(b).low) - (bootstrap_ci(a).low - bootstrap_ci(b).high)
    assert paired.high - paired.low < unpaired / 5
    flipped = paired_bootstrap_ci(b, a)
    assert flipped.value == pytest.approx(-paired.value) and flipped.low == pytest.approx(-paired.high, abs=2e-3)
    assert paired_bootstrap_ci([0.5, 0.7, 0.9], [0.4, 0.6, 0.8]) == Estimate(
        pytest.approx(0.1), low=pytest.approx(0.1), high=pytest.approx(0.1))  # constant difference
    assert paired_bootstrap_ci([1.0], [0.0]) == Estimate(1.0)  # one item: no interval
    w = [4, 2, 5]
    assert paired_bootstrap_ci([1, 0, 0.2], [0.5, 0, 0.2], weights=w).value == pytest.approx(2 / 11)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="one value per item: b has 2, the other 3"):
        paired_bootstrap_ci([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="1 of 3 values are NaN"):
        bootstrap_ci([1, math.nan, 3])
    with pytest.raises(ValueError, match=">= 0"):
        bootstrap_ci([1, 2], weights=[1, -1])
    with pytest.raises(ValueError, match="2 values for 3 items"):
        bootstrap_ci([1, 2, 3], weights=[1, 1])
    with pytest.raises(ValueError, match="positive weight"):
        paired_bootstrap_ci([1, 2], [1, 2], weights=[0, 0])


def test_report_json_writes_estimates_as_bounds(tmp_path):
    j, _ = write_report(tmp_path, title="R", results={"mrr": Estimate(0.4, low=0.3, high=0.5)},
                        tables=[])
    assert json.loads(j.read_text())["results"]["mrr"] == {"value": 0.4, "low": 0.3, "high": 0.5}
