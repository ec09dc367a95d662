"""Benchmark: churn of every function of one git checkout, against ``git log -L`` per function.

Usage::

    python benchmarks/churn.py CHECKOUT [--workers 1 2] [--no-renames] [--reference N]

Extracts every function of the ``.py`` files below ``CHECKOUT`` (as the directory source does, with
:data:`~jepa.corpus.sources.SKIPPED_DIRS` skipped), then times :func:`jepa.corpus.churn.function_churn`
for all of them (once per ``--workers`` value) and ``git log -L start,end:path --format=%H -s``
(``--no-renames`` added when given) for ``--reference`` of them (a seeded sample; 0 = none,
-1 = all), one process after another. Prints functions/s for each, and the number of functions
whose counts differ (the reference is the definition, so this must be 0).

A commit-graph with changed-path Bloom filters (``git commit-graph write --reachable
--changed-paths``) speeds up both sides; say whether the checkout has one when quoting figures.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import time
from pathlib import Path

from jepa.corpus.churn import function_churn
from jepa.corpus.extract import extract_functions
from jepa.corpus.sources import SKIPPED_DIRS


def main() -> None:
    """Parse arguments, extract the functions, time both methods and compare their counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--no-renames", action="store_true", help="do not follow renames")
    parser.add_argument("--reference", type=int, default=100,
                        help="functions timed with git log -L (0 none, -1 all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the reference sample")
    args = parser.parse_args()
    root = args.checkout
    functions = []
    files = sorted(p for p in root.rglob("*.py")
                   if not SKIPPED_DIRS.intersection(p.relative_to(root).parts))
    for p in files:
        found, _ = extract_functions(p.read_bytes(), path=p.relative_to(root).as_posix())
        functions.extend(found)
    has_graph = subprocess.run(["git", "-C", str(root), "rev-parse", "--git-path",
                                "objects/info/commit-graph"], capture_output=True, text=True,
                               check=True).stdout.strip()
    commits = subprocess.run(["git", "-C", str(root), "rev-list", "--count", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"{root}: {len(functions)} functions in {len(files)} files, {commits} commits, "
          f"commit-graph: {(root / has_graph).exists()}")
    ours = None
    for workers in args.workers:
        start = time.perf_counter()
        ours = function_churn(root, functions, follow_renames=not args.no_renames, workers=workers)
        seconds = time.perf_counter() - start
        print(f"function_churn (workers={workers}): {seconds:.1f} s, "
              f"{len(functions) / seconds:.1f} functions/s")
    sample = list(range(len(functions)))
    if args.reference >= 0:
        random.Random(args.seed).shuffle(sample)
        sample = sorted(sample[:args.reference])
    if not sample:
        return
    start, differ = time.perf_counter(), 0
    for k in sample:
        f = functions[k]
        out = subprocess.run(["git", "-C", str(root), "log", *(["--no-renames"] if args.no_renames
                                                                else []),
                              f"-L{f.start_line},{f.end_line}:{f.path}", "--format=%H", "-s"],
                             capture_output=True, text=True, check=True).stdout
        reference = len(set(out.split()))
        if ours is not None and ours[k] != reference:
            differ += 1
            print(f"differs: {f.path}::{f.qualname} lines {f.start_line}-{f.end_line}: "
                  f"function_churn {ours[k]}, git log -L {reference}")
    seconds = time.perf_counter() - start
    print(f"git log -L per function: {len(sample)} functions in {seconds:.1f} s, "
          f"{len(sample) / seconds:.1f} functions/s; counts differ for {differ}")


if __name__ == "__main__":
    main()
