"""One table across experiments: the "Full Comparison" table of the Phase 1.5 record, with baselines.

Usage::

    python -m graphrepair.compare RUN_DIR [RUN_DIR ...] [--out DIR] [--per-run]

Each ``RUN_DIR`` is a training run directory (its ``eval/report.json`` is read), an evaluation
directory holding ``report.json``, a ``report.json`` itself, or a seed group directory written by
``graphrepair.train --seeds N`` (its runs). Runs of one experiment that differ only in
``train.seed`` become one row, mean ± Student-t 95% CI over the training seeds (``--per-run``: one
row per run). Writes ``comparison.md`` (the Full Comparison table with baselines, later rows' paired
differences against the first on the same inputs, each row's final − one-shot improvement and its
model minus its baselines, all with paired-bootstrap CIs over programs) and ``comparison.png``
into ``--out`` (default: the current directory); see :mod:`graphrepair.evaluation.compare`. A
missing, unreadable or malformed report, or two runs of one experiment with the same training seed,
is one line on stderr naming the files, exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from graphrepair.evaluation.compare import compare, load_report
from harness.cli import EXIT_CODES_HELP, setup_logging

__all__ = ["compare", "load_report", "main"]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see module docstring); returns the exit code (0, or 2 for a bad report)."""
    ap = argparse.ArgumentParser(prog="python -m graphrepair.compare", epilog=EXIT_CODES_HELP,
                                 description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR",
                    help="run directories, seed group directories (train --seeds) or report.json files")
    ap.add_argument("--out", default=".", help="where comparison.md and comparison.png go (default: .)")
    ap.add_argument("--per-run", action="store_true",
                    help="one row per run (default: runs of one experiment that differ only in "
                         "train.seed are one row, mean and 95%% CI over the seeds)")
    args = ap.parse_args(argv)
    setup_logging()
    try:
        md_path, png, md = compare(args.runs, args.out, aggregate=not args.per_run)
    except (OSError, ValueError) as exc:  # FileNotFoundError is an OSError
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    print(md)
    print(f"comparison: {md_path}\n            {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
