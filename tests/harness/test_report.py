"""harness.report: schema of report.json, Markdown tables, atomic writes."""

import json
import math

import pytest

from harness.io import atomic_write_text
from harness.report import (
    SCHEMA_VERSION,
    Table,
    ci_cell,
    markdown_table,
    mean_ci,
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
    assert mean == 2.0 and hw == pytest.approx(4.303 / math.sqrt(3))  # t_{0.975,2} * s / sqrt(n), s = 1
    assert mean_ci([0.5]) == (0.5, None)  # n = 1: no interval
    assert mean_ci([0.4, math.nan, 0.4]) == (0.4, 0.0)
    assert math.isnan(mean_ci([])[0]) and mean_ci([])[1] is None
    # beyond the table: Cornish-Fisher against t_{0.975, 40} = 2.021 and t_{0.975, 120} = 1.980
    assert t_quantile_975(40) == pytest.approx(2.021, abs=1e-3)
    assert t_quantile_975(120) == pytest.approx(1.980, abs=1e-3)
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile_975(0)


def test_ci_cell_shows_percent_and_signed_points():
    assert ci_cell(0.8224, 0.0131) == "82.2% ± 1.3"
    assert ci_cell(0.5, None) == "50.0%"
    assert ci_cell(-12.43, 0.5, percent=False, signed=True) == "-12.4 ± 0.5"
    assert ci_cell(math.nan, None) == "n/a" and ci_cell(None, None) == "n/a"
