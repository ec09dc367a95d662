"""Command line: repair a buggy program with a trained refiner and its real tests.

Usage::

    python -m graphrepair.repair PROGRAM.py TESTS.py [--checkpoint PATH] [--iterations K]
                                 [--formula tarantula|ochiai|dstar] [--timeout S] [--out PATH]
                                 [--json]

TESTS.py is split by :func:`harness.run.parse_tests_file` exactly as for ``python -m
harness.run``. The loop (:mod:`graphrepair.repair.loop`): run the tests, localize with the spectrum
formula, mask the most suspicious lines' leaves, let the model refill them, run the tests on each
candidate, widen to less suspicious lines or move to a candidate that passes more tests, until
every test passes or K candidates (default 10) were run. ``--checkpoint`` defaults to the most
recently modified ``runs/**/best.pt`` (relative to the working directory); the output says which.

Output: the checkpoint used, the original's test results, one line per iteration (tests passed,
masked and changed lines), then a unified diff of the accepted program (or of the candidate that
passed the most tests, marked as not accepted). ``--json`` prints one object::

    {"repaired": bool, "source": "...", "checkpoint": "...", "formula": "...", "test_runs": N,
     "initial": {"passed": P, "total": T},
     "iterations": [{"iteration": i, "passed": p, "total": t, "masked_lines": [...],
                     "changed_lines": [...]}, ...]}

``source`` is the accepted program, or the original when no candidate passed every test;
``test_runs`` counts every program execution (the original's included). PROGRAM.py is never
modified; ``--out PATH`` writes the accepted program there (atomically; nothing is written when
the repair failed).

Exit code: 0 repaired (or already passing: zero iterations), 1 not repaired within the budget,
2 bad input (missing or unreadable file, not UTF-8, empty PROGRAM.py, TESTS.py without tests,
unknown formula, ``--iterations`` < 1, no checkpoint found or one that cannot be loaded; one
error line on stderr), 3 the sandbox could not start.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
from pathlib import Path

from graphrepair.data.problems import Problem
from graphrepair.repair.loop import REPAIR_FORMULAS, RepairResult
from graphrepair.repair.loop import repair as run_repair
from graphrepair.repair.proposer import load_proposer
from harness.io import atomic_write_text
from harness.run import InputError, read_tests, read_text
from harness.runs import find_checkpoint

log = logging.getLogger("graphrepair.repair")

_NO_CHECKPOINT = ("no checkpoint given and no runs/**/best.pt found under {root}; train one with "
                  "`python -m graphrepair.train --exp 3d_cpu` (writes runs/<exp>-<time>/best.pt) or "
                  "pass --checkpoint PATH")


def _diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                 fromfile=f"a/{name}", tofile=f"b/{name}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def _print_human(out: RepairResult, checkpoint: str, how: str, name: str, budget: int) -> None:
    print(f"checkpoint: {checkpoint} ({how})")
    print(f"original: {out.initial.n_passed}/{len(out.initial.tests)} tests passed")
    if out.repaired and not out.iterations:
        print("every test already passes: nothing to repair (0 iterations)")
        return
    for it in out.iterations:
        print(f"iteration {it.iteration}: {it.passed}/{it.total} passed; masked lines "
              f"{it.masked_lines}; changed lines {it.changed_lines}")
    if out.repaired:
        print(f"repaired after {len(out.iterations)} iterations ({out.test_runs} program runs):")
        print(_diff(out.original, out.source, name), end="")
    else:
        print(f"not repaired: no candidate passed every test in {len(out.iterations)} of {budget} "
              f"iterations ({out.test_runs} program runs)")
        if out.best_source != out.original:
            print(f"best candidate (NOT accepted, {out.best_passed}/{len(out.initial.tests)} "
                  f"passed):")
            print(_diff(out.original, out.best_source, name), end="")


_EXIT_CODES = ("exit codes: 0 repaired (or already passing), 1 not repaired within the budget, "
               "2 bad input (one error line), 3 the sandbox could not start")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m graphrepair.repair",
                                description=__doc__.split("\n")[0], epilog=_EXIT_CODES)
    p.add_argument("program", help="program source file (PROGRAM.py); never modified")
    p.add_argument("tests", help="tests file (TESTS.py), as for python -m harness.run")
    p.add_argument("--checkpoint", help="best.pt of graphrepair.train (default: the newest "
                   "runs/**/best.pt)")
    p.add_argument("--iterations", type=int, default=10,
                   help="budget K: candidate programs run at most (default 10)")
    p.add_argument("--formula", choices=REPAIR_FORMULAS, default="tarantula",
                   help="suspiciousness formula for localization (default tarantula)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="wall-clock limit per test and for loading, in s (default 5)")
    p.add_argument("--out", help="write the accepted program here (atomic)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def _budget(proposer) -> float | None:
    """The checkpoint's per-program time budget (``sandbox.budget_s``; ``None``: none or unknown)."""
    cfg = getattr(proposer, "cfg", None)  # a ModelProposer's experiment configuration
    return (cfg.sandbox.budget_s or None) if cfg is not None else None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: Arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        Exit code: 0 repaired, 1 not repaired, 2 usage or input error, 3 sandbox failure
        (argparse usage errors, an unknown ``--formula`` included, exit 2 through ``SystemExit``).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        if args.iterations < 1:
            raise InputError(f"--iterations must be >= 1, got {args.iterations}")
        if not 0 < args.timeout < float("inf"):
            raise InputError(f"--timeout must be finite and > 0, got {args.timeout:g}")
        source = read_text(args.program)
        if not source.strip():
            raise InputError(f"{args.program} is empty: there is nothing to repair")
        setup, tests, names = read_tests(args.tests)
        checkpoint, how = args.checkpoint, "given"
        if checkpoint is None:
            try:
                found = find_checkpoint("runs")
            except FileNotFoundError as exc:
                raise InputError(_NO_CHECKPOINT.format(root=Path("runs").resolve())) from exc
            checkpoint, how = str(found), "newest runs/**/best.pt"
        try:
            proposer = load_proposer(checkpoint)
        except (FileNotFoundError, RuntimeError) as exc:
            raise InputError(str(exc)) from exc
        log.info("checkpoint %s (%s)", checkpoint, how)
        problem = Problem(Path(args.program).name, source, tuple(tests), setup)
        out = run_repair(problem, proposer, iterations=args.iterations, formula=args.formula,
                         test_names=names, timeout_s=args.timeout,
                         budget_s=_budget(proposer))
    except (InputError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except RuntimeError as exc:  # the sandbox itself could not start (not the input's fault)
        log.error("sandbox failure: %s", exc)
        return 3
    if out.repaired and args.out:
        atomic_write_text(args.out, out.source)
    if args.json:
        print(json.dumps(out.to_json(checkpoint, args.formula)))
    else:
        _print_human(out, checkpoint, how, Path(args.program).name, args.iterations)
        if out.repaired and args.out:
            print(f"repaired program written to {args.out}")
    return 0 if out.repaired else 1


if __name__ == "__main__":
    sys.exit(main())
