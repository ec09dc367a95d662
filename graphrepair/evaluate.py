"""Iterative-refinement evaluation of a trained refiner, with real test execution, and its report.

Usage::

    python -m graphrepair.evaluate (--checkpoint PATH | --exp ID [--runs-root DIR])
        [--corruption 0.2 0.5 0.75] [--iterations K] [--seeds N] [--split val|test|humaneval]
        [--dataset NAME] [--max-tests N] [--programs N] [--no-feedback-zeroed]
        [--no-feedback-shuffled] [--no-search] [--set decoding.KEY=VALUE ...] [--data-dir DIR]
        [--device cpu|cuda|auto] [--out DIR]

Evaluates the checkpoint (``--exp ID``: the newest ``<runs-root>/<ID>-*/best.pt``) as described in
:mod:`graphrepair.evaluation.evaluate`: every (seed, level) unit refines the same corrupted programs
for K iterations with real test runs, beside the baselines on the same inputs; units are resumable.

Where the report goes: with the run's own evaluation settings (its config's ``eval`` section)
into ``<checkpoint dir>/eval`` — the report ``graphrepair.compare`` reads; with any option that
changes them (``--split humaneval --programs 3``) into its own directory
``<checkpoint dir>/eval-<options>``, so a one-off evaluation never replaces the run's main report.
``--dataset mbpp_plus`` evaluates an MBPP model on the MBPP+ versions of its split's problems (the
same problems, ~100 tests each instead of 3).
``--set decoding.grammar=true`` (any key of the ``decoding`` section: grammar, identifiers,
policy, remask, forbid_previous) decodes the trained model another way, e.g. a model trained with
the record's rule evaluated with grammar-constrained mask-predict.
``--out DIR`` chooses the directory.

Exit codes (:mod:`harness.cli`): 0 evaluated, 2 bad input (missing or damaged checkpoint or
dataset, an option out of range), 3 the environment (``--device cuda`` without CUDA).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from graphrepair.data.dataset import HELDOUT_SPLITS
from graphrepair.data.problems import DATASETS
from graphrepair.evaluation.evaluate import evaluate_checkpoint, find_checkpoint
from harness.cli import (
    EXIT_CODES_HELP,
    InputError,
    resolve_device,
    run_cli,
    setup_logging,
)

__all__ = ["main", "report_dir"]


def report_dir(checkpoint: Path, args: argparse.Namespace) -> Path:
    """Where the report of evaluating ``checkpoint`` with ``args`` goes (see module docstring)."""
    if args.out:
        return Path(args.out)
    parts = []
    if args.dataset:
        parts.append(f"dataset_{args.dataset}")
    if args.max_tests is not None:
        parts.append(f"max_tests_{args.max_tests}")
    if args.split:
        parts.append(f"split_{args.split}")
    if args.programs is not None:
        parts.append(f"programs_{args.programs}")
    if args.corruption:
        parts.append("levels_" + "_".join(f"{lv:g}" for lv in args.corruption))
    if args.iterations is not None:
        parts.append(f"iterations_{args.iterations}")
    if args.seeds is not None:
        parts.append(f"seeds_{args.seeds}")
    if args.no_feedback_zeroed:
        parts.append("no_feedback_zeroed")
    if args.no_feedback_shuffled:
        parts.append("no_feedback_shuffled")
    if args.no_search:
        parts.append("no_search")
    for text in args.set or ():
        parts.append(text.replace("decoding.", "").replace("=", "_"))
    return checkpoint.parent / ("eval-" + "-".join(parts) if parts else "eval")


def _check(args: argparse.Namespace) -> None:
    """Option ranges, before anything is loaded or written.

    Raises:
        InputError: a value out of range (the message names the flag).
    """
    if args.iterations is not None and args.iterations < 1:
        raise InputError(f"--iterations must be >= 1 (iteration 0 is the one-shot), got {args.iterations}")
    if args.programs is not None and args.programs < 0:
        raise InputError(f"--programs must be >= 0 (0 = every program of the split), got {args.programs}")
    if args.max_tests is not None and args.max_tests < 1:
        raise InputError(f"--max-tests must be >= 1, got {args.max_tests}")
    if args.seeds is not None and args.seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {args.seeds}")
    if args.corruption and any(not 0.0 <= lv <= 1.0 for lv in args.corruption):
        raise InputError(f"--corruption levels must lie in [0, 1], got {args.corruption}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see module docstring). Returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m graphrepair.evaluate", epilog=EXIT_CODES_HELP,
                                 description=__doc__.split("\n")[0])
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="a best.pt / last.pt written by graphrepair.train")
    which.add_argument("--exp", help="evaluate the newest <runs-root>/<EXP>-*/best.pt")
    ap.add_argument("--runs-root", default="runs", help="where --exp looks (default: runs)")
    ap.add_argument("--corruption", type=float, nargs="+", help="levels, e.g. 0.2 0.5 0.75")
    ap.add_argument("--iterations", type=int, help="refinement iterations K (iteration 0 included)")
    ap.add_argument("--seeds", type=int, help="corruption seeds eval.seed + 0..N-1 (mean, 95%% CI)")
    ap.add_argument("--split", choices=["val", "test", *HELDOUT_SPLITS])
    ap.add_argument("--dataset", choices=list(DATASETS),
                    help="evaluate on this dataset's split instead of the run's (e.g. mbpp_plus: "
                         "the MBPP+ versions of an MBPP model's test problems, ~100 tests each)")
    ap.add_argument("--max-tests", type=int,
                    help="tests run and fed back per program (default: the run's data.max_tests; "
                         "with --dataset mbpp_plus, 3 = the original MBPP tests' inputs)")
    ap.add_argument("--programs", type=int, help="at most this many programs per level (0 = all)")
    ap.add_argument("--no-feedback-zeroed", action="store_true", help="skip the feedback-zeroed baseline")
    ap.add_argument("--no-feedback-shuffled", action="store_true",
                    help="skip the baseline fed other programs' test feedback")
    ap.add_argument("--no-search", action="store_true",
                    help="skip the search baseline (the model's budget of test executions)")
    ap.add_argument("--set", action="append", metavar="decoding.KEY=VALUE",
                    help="decode another way (a key of the decoding section; repeatable)")
    ap.add_argument("--data-dir", help="dataset directory (default: $GRAPHREPAIR_DATA or the cache)")
    ap.add_argument("--device", default="cpu", help="where the model runs: cpu (default), cuda, auto")
    ap.add_argument("--out", help="report directory (default: <checkpoint dir>/eval, or "
                                  "eval-<options> when options change the run's settings)")
    args = ap.parse_args(argv)
    setup_logging()
    return run_cli(lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    _check(args)
    device = resolve_device(args.device)
    path = Path(args.checkpoint) if args.checkpoint else find_checkpoint(args.exp, args.runs_root)
    if args.exp:
        print(f"evaluating {path} (newest best.pt of Exp {args.exp})")
    _, json_path, md_path, table = evaluate_checkpoint(
        path, report_dir(path, args), data_dir=args.data_dir, device=device, dataset=args.dataset,
        max_tests=args.max_tests, overrides=args.set or (),
        levels=args.corruption, iterations=args.iterations, split=args.split,
        programs=args.programs, seeds=args.seeds,
        feedback_zeroed=False if args.no_feedback_zeroed else None,
        feedback_shuffled=False if args.no_feedback_shuffled else None,
        search_baseline=False if args.no_search else None,
    )
    print(table)
    print(f"report: {md_path}\n        {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
