"""harness.report: schema of report.json, Markdown tables, atomic writes."""

import json
import math

import pytest

from harness.io import atomic_write_text
from harness.report import SCHEMA_VERSION, Table, markdown_table, write_report


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
