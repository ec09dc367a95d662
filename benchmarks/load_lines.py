"""Load-only lines and fault localization: the faulty line's rank on real one-line bugs, both rules.

Builds ``--n`` verified one-line mutants (default 200; :func:`graphrepair.repair.mutants.make_mutants`,
fixed ``--seed``, spread over the four kinds) of the ``--dataset`` programs (default ``mbpp``:
all 974 problems; ``mbpp_plus``: ~100 tests per program, much slower to build), runs each in the
sandbox once, and ranks its executed lines with Tarantula and Ochiai under both treatments of the
lines executed only while the program loads (:data:`graphrepair.feedback.spectrum.LOAD_LINES`):

* ``every_test``: they count as covered by every test (the rule before the option);
* ``no_test``: they count as covered by no test (the default of ``line_spectrum``).

Per formula and rule it prints the mean *average rank* of the faulty line (ties averaged, 1 =
most suspicious; a faulty line no test executed, e.g. inside a multi-line statement whose first
line coverage reports, ranks after every executed line: E + 1), the share of bugs whose faulty
line ranks 1 with no tie, and how many bugs each rule ranks better. Every rank is checked against
an independent implementation (per-test line sets and exact fractions, no numpy) before it is
counted; a disagreement stops the run.

Usage::

    python benchmarks/load_lines.py [--dataset mbpp] [--n 200] [--seed 0] [--timeout 2]
        [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from graphrepair.data.problems import load_problems  # noqa: E402
from graphrepair.feedback.spectrum import LOAD_LINES, line_spectrum, ranks, score  # noqa: E402
from graphrepair.repair.mutants import KINDS, make_mutants  # noqa: E402
from harness.cache import ResultCache  # noqa: E402
from harness.sandbox import Job, ProgramResult, run_batch  # noqa: E402

log = logging.getLogger("load_lines")
FORMULAS = ("tarantula", "ochiai")


def reference_ranks(result: ProgramResult, load_lines: str, formula: str) -> dict[int, Fraction]:
    """Average rank of every executed line, from per-test line sets and exact fractions.

    Written apart from :mod:`graphrepair.feedback.spectrum` (no shared code) to check it.
    Ochiai is compared through its square ``f² / (F (f + p))`` (same order, exact).
    """
    load = set(result.load_covered_lines)
    covers = [set(t.covered_lines) | (load if load_lines == "every_test" else set())
              for t in result.tests]
    failing = [t.outcome != "passed" for t in result.tests]
    big_f, big_p = sum(failing), len(failing) - sum(failing)
    lines = load.union(*(set(t.covered_lines) for t in result.tests))
    value = {}
    for ln in lines:
        f = sum(1 for c, bad in zip(covers, failing) if bad and ln in c)
        p = sum(1 for c, bad in zip(covers, failing) if not bad and ln in c)
        if formula == "tarantula":
            rf = Fraction(f, big_f) if big_f else Fraction(0)
            rp = Fraction(p, big_p) if big_p else Fraction(0)
            value[ln] = rf / (rf + rp) if rf + rp else Fraction(0)
        else:
            value[ln] = Fraction(f * f, big_f * (f + p)) if big_f and f + p else Fraction(0)
    out = {}
    for ln, v in value.items():
        higher = sum(1 for w in value.values() if w > v)
        equal = sum(1 for w in value.values() if w == v)
        out[ln] = Fraction(2 * higher + 1 + equal, 2)  # (best + worst) / 2
    return out


def faulty_rank(result: ProgramResult, source: str, line: int, load_lines: str,
                formula: str) -> tuple[float, bool]:
    """(average rank, alone at rank 1) of ``line``; checked against :func:`reference_ranks`."""
    spectrum = line_spectrum(result, source, load_lines=load_lines)
    average = ranks(score(spectrum, formula)).average
    check = reference_ranks(result, load_lines, formula)
    assert sorted(check) == spectrum.elements.tolist(), "the executed lines differ"
    for ln, r in zip(spectrum.elements.tolist(), average.tolist()):
        assert r == float(check[ln]), f"line {ln}: rank {r} vs independent {check[ln]}"
    at = np.flatnonzero(spectrum.elements == line)
    if not len(at):
        return float(len(spectrum.elements) + 1), False
    return float(average[at[0]]), bool(average[at[0]] == 1.0)


def main(argv: list[str] | None = None) -> int:
    """Build and run the mutants; print the faulty line's mean rank under both rules."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="mbpp", choices=["mbpp", "sanitized-mbpp", "mbpp_plus"])
    ap.add_argument("--data-dir", help="dataset directory (default: GRAPHREPAIR_DATA or the cache)")
    ap.add_argument("--n", type=int, default=200, help="mutants (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="mutant seed (default 0)")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-test limit in s (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="sandbox processes (default 2)")
    ap.add_argument("--json", help="also write the figures and per-bug ranks to this file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    problems = load_problems(args.dataset, args.data_dir)
    cache = ResultCache()
    t0 = time.perf_counter()
    mutants = make_mutants(problems, args.n, seed=args.seed, timeout_s=args.timeout,
                           workers=args.workers, cache=cache)
    results = run_batch([Job(m.task_id, m.source, m.reference.tests, m.reference.setup,
                             m.reference.timeout_s) for m in mutants],
                        workers=args.workers, timeout_s=args.timeout, cache=cache)
    seconds = time.perf_counter() - t0
    rows = []
    for m, r in zip(mutants, results):
        if r.load_outcome != "passed":
            continue  # scored on its error region under either rule
        by_test = {ln for t in r.tests for ln in t.covered_lines}
        row = {"task_id": m.task_id, "kind": m.kind, "line": m.mutation.line,
               "load_only": m.mutation.line in r.load_covered_lines and m.mutation.line not in by_test,
               "executed": m.mutation.line in by_test or m.mutation.line in r.load_covered_lines}
        for rule in LOAD_LINES:
            for formula in FORMULAS:
                row[f"{formula}/{rule}"], row[f"{formula}/{rule}/top1"] = faulty_rank(
                    r, m.source, m.mutation.line, rule, formula)
        rows.append(row)
    n = len(rows)
    print(f"{n} one-line mutants of {args.dataset} ({len(mutants) - n} that do not load left out; "
          f"{sum(not r['executed'] for r in rows)} with the faulty line unexecuted, "
          f"{sum(r['load_only'] for r in rows)} on a load-only line), seed {args.seed}, "
          f"built and run in {seconds:.0f} s; every rank matched the independent implementation")
    print(f"{'formula':<10} {'load lines':<11} {'mean rank':>9} {'top-1':>6}   "
          f"{'no_test better / same / worse':>30} {'mean gain':>10}")
    summary = {}
    for formula in FORMULAS:
        new = np.array([r[f"{formula}/no_test"] for r in rows])
        old = np.array([r[f"{formula}/every_test"] for r in rows])
        for rule, values in (("every_test", old), ("no_test", new)):
            top1 = np.mean([r[f"{formula}/{rule}/top1"] for r in rows])
            summary[f"{formula}/{rule}"] = {"mean_rank": float(values.mean()), "top1": float(top1)}
            print(f"{formula:<10} {rule:<11} {values.mean():>9.3f} {top1:>6.1%}", end="")
            if rule == "no_test":
                better, worse = int((new < old).sum()), int((new > old).sum())
                print(f"   {better:>14} / {n - better - worse} / {worse:<9} {np.mean(old - new):>+10.3f}")
                summary[f"{formula}/change"] = {"better": better, "worse": worse,
                                                "median_gain": float(np.median(old - new))}
            else:
                print()
    print("per kind, Tarantula mean rank every_test -> no_test: " + ", ".join(
        f"{k} {np.mean([r['tarantula/every_test'] for r in rows if r['kind'] == k]):.2f} -> "
        f"{np.mean([r['tarantula/no_test'] for r in rows if r['kind'] == k]):.2f}"
        for k in KINDS if any(r["kind"] == k for r in rows)))
    if args.json:
        Path(args.json).write_text(json.dumps({"dataset": args.dataset, "n": n, "seed": args.seed,
                                               "summary": summary, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
