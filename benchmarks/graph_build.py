"""Benchmark: ProgramGraph.from_source vs tree-sitter parsing alone over all MBPP programs.

Usage::

    python benchmarks/graph_build.py [--data-dir DIR] [--repeats 5]

Prints programs/s (best of ``--repeats`` passes over the 974 MBPP programs, one core) for parsing
alone and for building the full graph, and their ratio.
"""

from __future__ import annotations

import argparse
import time


def _best_rate(fn, items, repeats: int) -> float:
    """Best programs/s of ``repeats`` passes of ``fn`` over ``items``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def main() -> None:
    """Parse arguments, load MBPP, time both passes and print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="data directory (else GRAPHREPAIR_DATA)")
    parser.add_argument("--repeats", type=int, default=5, help="passes; the best is reported")
    args = parser.parse_args()

    from graphrepair.data import load_mbpp
    from graphrepair.graph import ProgramGraph, _parser

    sources = [p.source for p in load_mbpp(args.data_dir)]
    encoded = [s.encode("utf-8") for s in sources]
    ts_parser = _parser()
    parse_rate = _best_rate(ts_parser.parse, encoded, args.repeats)
    graph_rate = _best_rate(ProgramGraph.from_source, sources, args.repeats)
    nodes = sum(ProgramGraph.from_source(s).num_nodes for s in sources) / len(sources)
    print(f"MBPP programs: {len(sources)}, mean graph nodes: {nodes:.1f}")
    print(f"tree-sitter parse only:      {parse_rate:9.0f} programs/s")
    print(f"ProgramGraph.from_source:    {graph_rate:9.0f} programs/s")
    print(f"ratio (graph / parse):       {graph_rate / parse_rate:9.3f}")


if __name__ == "__main__":
    main()
