"""Command line: spectrum-based fault localization of a program from its real test runs.

Usage::

    python -m graphrepair.localize PROGRAM.py TESTS.py [--formula tarantula|ochiai|dstar|binary]
                                   [--star X] [--load-lines no_test|every_test] [--timeout S]
                                   [--json]

Runs the tests in the sandbox (:func:`harness.sandbox.run_tests`, TESTS.py split by
:func:`harness.run.parse_tests_file` exactly as ``python -m harness.run`` does), builds the
per-line spectrum and scores every executed line with :mod:`graphrepair.feedback.spectrum` (default
``tarantula``; ``--star`` is DStar's exponent, default 2). A test counts as failing unless it
passed. Lines executed only while the program loads (``def`` headers, imports) are covered by no
test and score 0 (``--load-lines no_test``, the default), or by every test (``every_test``, the
rule before the option; :data:`graphrepair.feedback.spectrum.LOAD_LINES`). A program that does
not load is scored on its parse-error region.

Output: a summary line (passed and failing test counts), then one row per executed line, most
suspicious first (ties by line number): rank (``best-worst`` when tied), line, score, failing and
passing tests covering it, and the line's text. With ``--json`` one object::

    {"formula": ..., "tests": {"passed": P, "failed": F},
     "lines": [{"line", "score", "failed", "passed", "rank_best", "rank_avg", "rank_worst"}, ...]}

Exit code: 0 when the localization was printed (whatever the verdicts), 2 on bad input (a missing
or unreadable file, a file that is not UTF-8, an empty PROGRAM.py, a TESTS.py that does not parse
or holds no test, an unknown formula, absurd ``--timeout`` or ``--star``; one error line on
stderr, no traceback), 3 when the sandbox could not start, as for ``harness.run``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections import Counter

import numpy as np

from graphrepair.feedback.spectrum import (
    FORMULAS,
    LOAD_LINES,
    Ranks,
    Spectrum,
    line_spectrum,
    ranks,
    score,
)
from harness.run import InputError, read_tests, read_text
from harness.sandbox import ProgramResult, run_tests

log = logging.getLogger("graphrepair.localize")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line breaks Python counts (str.splitlines has more)


def _report(formula: str, spectrum: Spectrum, scores: np.ndarray, rank: Ranks) -> dict:
    """The ``--json`` object; lines by score, highest first, ties by line number."""
    order = np.lexsort((spectrum.elements, -scores))
    lines = [{"line": int(spectrum.elements[i]), "score": float(scores[i]),
              "failed": int(spectrum.failed[i]), "passed": int(spectrum.passed[i]),
              "rank_best": int(rank.best[i]), "rank_avg": float(rank.average[i]),
              "rank_worst": int(rank.worst[i])} for i in order]
    return {"formula": formula,
            "tests": {"passed": spectrum.total_passed, "failed": spectrum.total_failed},
            "lines": lines}


def _print_human(report: dict, result: ProgramResult, source: str) -> None:
    counts = Counter(t.outcome for t in result.tests if t.outcome != "passed")
    detail = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    tests = report["tests"]
    print(f"{report['formula']}: {tests['passed']} passed, {tests['failed']} failing"
          + (f" ({detail})" if detail else "")
          + (f"; program load {result.load_outcome}, scoring its error region"
             if result.load_outcome != "passed" else ""))
    text = _LINE_BREAK.split(source)
    print(f"{'rank':>7} {'line':>5} {'score':>9} {'fail':>5} {'pass':>5}  source")
    for row in report["lines"]:
        best, worst = row["rank_best"], row["rank_worst"]
        rank = str(best) if best == worst else f"{best}-{worst}"
        line = text[row["line"] - 1].rstrip() if row["line"] <= len(text) else ""
        print(f"{rank:>7} {row['line']:>5} {row['score']:>9.4f} {row['failed']:>5} "
              f"{row['passed']:>5}  {line}")


_EXIT_CODES = ("exit codes: 0 printed, 2 bad input (one error line), 3 the sandbox could not "
               "start")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m graphrepair.localize",
                                description=__doc__.split("\n")[0], epilog=_EXIT_CODES)
    p.add_argument("program", help="program source file (PROGRAM.py)")
    p.add_argument("tests", help="tests file (TESTS.py), as for python -m harness.run")
    p.add_argument("--formula", choices=sorted(FORMULAS), default="tarantula",
                   help="suspiciousness formula (default tarantula)")
    p.add_argument("--star", type=float, default=2.0, help="DStar exponent, > 0 (default 2)")
    p.add_argument("--load-lines", choices=LOAD_LINES, default=LOAD_LINES[0],
                   help="tests that cover the lines executed only while loading (default "
                        f"{LOAD_LINES[0]}: none, they score 0)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="wall-clock limit per test and for loading, in s (default 5)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: Arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        Exit code: 0 printed, 2 usage or input error, 3 the sandbox could not start (argparse
        usage errors, an unknown ``--formula`` included, exit 2 through ``SystemExit``).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        if not 0 < args.star < float("inf"):
            raise InputError(f"--star must be finite and > 0 (Wong et al. use 2), got "
                             f"{args.star:g}")
        source = read_text(args.program)
        if not source.strip():
            raise InputError(f"{args.program} is empty: there is nothing to localize")
        setup, tests, names = read_tests(args.tests)
        result = run_tests(source, tests, setup, timeout_s=args.timeout, test_names=names)
    except (InputError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except RuntimeError as exc:  # the sandbox itself could not start (not the input's fault)
        log.error("sandbox failure: %s", exc)
        return 3
    spectrum = line_spectrum(result, source, load_lines=args.load_lines)
    scores = score(spectrum, args.formula, star=args.star)
    report = _report(args.formula, spectrum, scores, ranks(scores))
    if args.json:
        print(json.dumps(report))
    else:
        _print_human(report, result, source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
