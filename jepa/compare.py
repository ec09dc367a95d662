"""Tabulate jepa runs side by side: ``python -m jepa.compare RUN_DIR ... [--out DIR]``.

Reads each run's ``eval/report.json`` (written by ``python -m jepa.train`` or ``jepa.evaluate``)
and writes the record's Phase 1 / Phase 2 table — per run its experiment, the student's val
Rank@10 and test Rank@1/5/10, MRR and cosine, with their 95 % bootstrap intervals — followed by
the baselines of the first run (random, teacher signature, BM25: the same for runs on the same
corpus and teacher), through the shared reporter (``report.md``/``report.json`` in ``--out``,
default ``runs/compare-<UTC time>``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.cli import EXIT_CODES_HELP, EXIT_OK, run_cli, setup_logging
from harness.errors import InputError
from harness.report import COSINE, NUMBER, PERCENT, Estimate, Table, write_report
from harness.runs import timestamped_run_dir

__all__ = ["comparison_tables", "main"]

_COLUMNS = ("rank@1", "rank@5", "rank@10", "mrr", "cosine")


def _estimate(cell: dict[str, Any] | None) -> Estimate | str:
    if not cell:
        return "n/a"
    value = cell.get("value")
    if value is None:
        return "n/a"
    return Estimate(value, low=cell.get("low"), high=cell.get("high"))


def _load(run: Path) -> tuple[str, dict[str, Any]]:
    path = run / "eval" / "report.json" if (run / "eval").is_dir() else run / "report.json"
    if not path.is_file():
        raise InputError(f"{run} holds no eval/report.json; train it with `python -m jepa.train` "
                         f"or evaluate it with `python -m jepa.evaluate --checkpoint {run}/best.pt`")
    report = json.loads(path.read_text())
    return report.get("config", {}).get("exp", run.name), report["results"]


def comparison_tables(runs: Sequence[Path]) -> tuple[list[Table], dict[str, Any]]:
    """The comparison tables and the numbers behind them (see the module docstring).

    Raises:
        InputError: a run without an evaluation report.
    """
    loaded = [(run, *_load(run)) for run in runs]
    rows, results = [], {}
    for run, exp, res in loaded:
        test, val = res.get("test", {}), res.get("val", {})
        student = next((k for k in test if k.startswith("student")), None)
        if student is None:
            raise InputError(f"{run}: its report has no student row")
        rows.append([exp, str(run.name), _estimate(val.get(student, {}).get("rank@10")),
                     *[_estimate(test[student].get(c)) for c in _COLUMNS]])
        results[str(run)] = {"exp": exp, "val": val.get(student), "test": test[student]}
    formats = {"val Rank@10": PERCENT, "MRR": NUMBER, "cosine": COSINE}
    columns = ["experiment", "run", "val Rank@10", "test Rank@1", "test Rank@5", "test Rank@10",
               "MRR", "cosine"]
    tables = [Table(title="Students (test is the result; val chose each checkpoint)", columns=columns,
                    rows=rows, fmt=PERCENT, formats=formats,
                    caption="95 % bootstrap intervals over queries.")]
    _, exp0, res0 = loaded[0]
    base_rows = [[name, *[_estimate(v.get(c)) for c in _COLUMNS]]
                 for name, v in res0.get("test", {}).items() if not name.startswith("student")]
    tables.append(Table(title=f"Baselines on the test queries of {exp0}",
                        columns=["baseline", "Rank@1", "Rank@5", "Rank@10", "MRR", "cosine"],
                        rows=base_rows, fmt=PERCENT, formats={"MRR": NUMBER, "cosine": COSINE},
                        caption="The same for every run on the same corpus and teacher."))
    return tables, results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m jepa.compare``; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m jepa.compare", description=__doc__.splitlines()[0],
                                 epilog=EXIT_CODES_HELP)
    ap.add_argument("runs", nargs="+", help="run directories")
    ap.add_argument("--out", help="output directory (default runs/compare-<UTC time>)")
    args = ap.parse_args(argv)
    setup_logging()

    def run() -> int:
        tables, results = comparison_tables([Path(r) for r in args.runs])
        out = Path(args.out) if args.out else timestamped_run_dir("runs", "compare")
        write_report(out, title="jepa: students side by side", results=results, tables=tables,
                     config={"runs": args.runs})
        print((out / "report.md").read_text())
        return EXIT_OK

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
