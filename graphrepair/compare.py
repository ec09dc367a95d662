"""One table across experiments: the "Full Comparison" table of the Phase 1.5 record, with baselines.

Usage::

    python -m graphrepair.compare RUN_DIR [RUN_DIR ...] [--out DIR]

Each ``RUN_DIR`` is a training run directory (its ``eval/report.json`` is read), an evaluation
directory holding ``report.json``, or a ``report.json`` itself. Writes ``comparison.md`` (the Full
Comparison table with baselines, and later runs' paired differences against the first on the same
inputs) and ``comparison.png`` into ``--out`` (default: the current directory); see
:mod:`graphrepair.evaluation.compare`. A missing, unreadable or malformed report is one line on
stderr naming the file, exit code 2.
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
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (or report.json files)")
    ap.add_argument("--out", default=".", help="where comparison.md and comparison.png go (default: .)")
    args = ap.parse_args(argv)
    setup_logging()
    try:
        md_path, png, md = compare(args.runs, args.out)
    except (OSError, ValueError) as exc:  # FileNotFoundError is an OSError
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    print(md)
    print(f"comparison: {md_path}\n            {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
