"""Iterative-refinement evaluation of a trained refiner, with real test execution, and its report.

Usage::

    python -m graphrepair.evaluate (--exp ID | --checkpoint PATH) [--corruption 0.2 0.5 0.75]
        [--iterations K] [--seeds N] [--split val|test|humaneval] [--programs N] [--out DIR]

For each seed ``s`` (0-based) and corruption level the same corrupted programs are refined for K
iterations (DESIGN.md loop: predict -> decode -> run tests -> feedback). The corruption seed is
``eval.seed + s``, and a program's mask depends only on (corruption seed, task id, level)
(:func:`graphrepair.data.dataset.fixed_states`), so every model evaluated with the same seeds sees the
same inputs and rows are comparable across runs. On the same inputs, the baselines of
:mod:`graphrepair.evaluation.report` (feedback zeroed, unigram, copy) are evaluated the same way, tests
executed. Numbers are means with a Student-t 95% CI over seeds.

``--split humaneval`` evaluates a model trained on MBPP on HumanEval (a cross-dataset held-out split,
:func:`graphrepair.data.dataset.add_heldout_split`). ``--exp ID`` evaluates the newest
``runs/<ID>-*/best.pt``.

Resumable: each finished (seed, level) is written atomically to ``<out>/partial/`` with a
fingerprint of the model weights, vocabulary, settings and inputs; a rerun with the same
fingerprint skips it (a different fingerprint is recomputed, with a warning). Output:
``report.json``, ``report.md`` and PNG plots via :mod:`harness.report`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from graphrepair.data.dataset import HELDOUT_SPLITS
from graphrepair.evaluation.evaluate import evaluate_checkpoint, find_checkpoint

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m graphrepair.evaluate", description=__doc__.split("\n")[0])
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="a best.pt / last.pt written by graphrepair.train")
    which.add_argument("--exp", help="evaluate the newest <runs-root>/<EXP>-*/best.pt")
    ap.add_argument("--runs-root", default="runs", help="where --exp looks (default: runs)")
    ap.add_argument("--corruption", type=float, nargs="+", help="levels, e.g. 0.2 0.5 0.75")
    ap.add_argument("--iterations", type=int, help="refinement iterations K (iteration 0 included)")
    ap.add_argument("--seeds", type=int, help="corruption seeds eval.seed + 0..N-1 (mean, 95%% CI)")
    ap.add_argument("--split", choices=["val", "test", *HELDOUT_SPLITS])
    ap.add_argument("--programs", type=int, help="at most this many programs per level (0 = all)")
    ap.add_argument("--no-feedback-zeroed", action="store_true", help="skip the feedback-zeroed baseline")
    ap.add_argument("--data-dir", help="dataset directory (default: $GRAPHREPAIR_DATA or the cache)")
    ap.add_argument("--device", default="cpu", help="where the model runs (cpu, cuda)")
    ap.add_argument("--out", help="report directory (default: <checkpoint dir>/eval)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = Path(args.checkpoint) if args.checkpoint else find_checkpoint(args.exp, args.runs_root)
        if args.exp:
            print(f"evaluating {path} (newest best.pt of Exp {args.exp})")
        _, json_path, md_path, table = evaluate_checkpoint(
            path, args.out, data_dir=args.data_dir, device=args.device, levels=args.corruption,
            iterations=args.iterations, split=args.split, programs=args.programs, seeds=args.seeds,
            feedback_zeroed=False if args.no_feedback_zeroed else None,
        )
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table)
    print(f"report: {md_path}\n        {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
