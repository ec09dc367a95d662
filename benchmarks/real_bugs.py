"""Repairing real one-line bugs: repair rate and test executions of ``graphrepair.repair.cli``.

Builds ``--n`` mutants (default 100) with :func:`graphrepair.repair.mutants.make_mutants` (fixed
``--seed``) from the *test split of the checkpoint's own experiment* (the same problems, after the
same ``max_nodes`` and near-duplicate filters, that ``graphrepair.evaluate`` reports on), spread
evenly over the four kinds (operator, comparison, off-by-one, wrong variable); every mutant is
verified to fail at least one of its tests. Then each mutant is repaired by
:func:`graphrepair.repair.loop.repair` with the same localization, masked leaves, search and budget,
once per proposer:

* ``model``: the checkpoint's refiner;
* ``unigram``: no context; each masked leaf's options are the vocabulary texts of its lexical
  category in training-split frequency order (DESIGN.md's unigram baseline, as a ranked list);
* ``undo``: brute-force mutation undo: each masked leaf's options are the inverse mutation
  operators (every other arithmetic/comparison operator, integer +-1, every other identifier of
  the program), unranked (leaf order). It knows the mutation operators, the model does not.

Printed per proposer: repair rate per kind and overall (a repair = a candidate passing every
test; "exact" = identical to the reference), mean test executions (program runs, the buggy
program's first run included) per repaired program and per mutant, and wall time.

Usage::

    python benchmarks/real_bugs.py --checkpoint runs/.../best.pt [--n 100] [--seed 0]
        [--iterations 10] [--formula tarantula] [--proposers model unigram undo]
        [--dataset mbpp_plus] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from graphrepair.data.dataset import prepare  # noqa: E402
from graphrepair.graphs.graph import LeafCategory, ProgramGraph  # noqa: E402
from graphrepair.graphs.vocab import SPECIAL_TOKENS  # noqa: E402
from graphrepair.loop.constraints import text_categories  # noqa: E402
from graphrepair.repair.loop import REPAIR_FORMULAS, repair  # noqa: E402
from graphrepair.repair.mutants import COMPARISON_SWAPS, KINDS, OPERATOR_SWAPS, make_mutants  # noqa: E402
from graphrepair.repair.proposer import ModelProposer, load_proposer  # noqa: E402
from harness.runs import find_checkpoint  # noqa: E402

log = logging.getLogger("real_bugs")
_ARITH = sorted({k for k in OPERATOR_SWAPS if not k.endswith("=")})
_AUG = sorted({k for k in OPERATOR_SWAPS if k.endswith("=")})
_CMP = sorted(COMPARISON_SWAPS)


class UnigramProposer:
    """Context-free: the vocabulary's texts of the leaf's category, most frequent first."""

    def __init__(self, model: ModelProposer, top_k: int = 10) -> None:
        self.base, self.top_k = model, top_k
        by_cat: dict[LeafCategory, list[str]] = defaultdict(list)
        leaf = model.vocab.leaf_token_mask()
        for i in range(len(SPECIAL_TOKENS), len(model.vocab)):
            if leaf[i]:  # leaf-text ids are in training-split frequency order
                text = model.vocab.text(i)
                for category in text_categories(text):
                    by_cat[category].append(text)
        self.by_cat = by_cat

    def maskable(self, graph: ProgramGraph) -> np.ndarray:
        """The model's maskable leaves (same masked sets for every proposer)."""
        return self.base.maskable(graph)

    def propose(self, problem, graph, masks, result):
        """Per masked leaf: ``{text: -rank}`` over its category's frequent texts."""
        out = []
        for masked in masks:
            per_leaf = []
            for i in np.flatnonzero(masked):
                ranked = self.by_cat[graph.leaf_categories[i]]
                opts = {t: -float(r) for r, t in enumerate(ranked[: self.top_k])}
                cur = graph.leaf_texts[i]
                opts.setdefault(cur, -float(ranked.index(cur)) if cur in ranked else -1e9)
                per_leaf.append(opts)
            out.append(per_leaf)
        return out


class UndoProposer:
    """Brute-force inverse mutation operators, all options scored equally."""

    def __init__(self, model: ModelProposer) -> None:
        self.base = model

    def maskable(self, graph: ProgramGraph) -> np.ndarray:
        """The model's maskable leaves (same masked sets for every proposer)."""
        return self.base.maskable(graph)

    def propose(self, problem, graph, masks, result):
        """Per masked leaf: ``{text: 0.0}`` for every inverse-operator option and the current text."""
        names = sorted({t for t, c in zip(graph.leaf_texts, graph.leaf_categories)
                        if c is LeafCategory.IDENTIFIER})
        out = []
        for masked in masks:
            per_leaf = []
            for i in np.flatnonzero(masked):
                cur = graph.leaf_texts[i]
                if cur in _CMP:
                    options = _CMP
                elif cur in _ARITH:
                    options = _ARITH
                elif cur in _AUG:
                    options = _AUG
                elif cur.isdigit():
                    options = [str(v) for v in (int(cur) - 1, int(cur) + 1) if v >= 0]
                elif graph.leaf_categories[i] is LeafCategory.IDENTIFIER:
                    options = names
                else:
                    options = []
                per_leaf.append({t: 0.0 for t in [cur, *options]})
            out.append(per_leaf)
        return out


def run(proposer, mutants, name: str, **kwargs) -> dict:
    """Repair every mutant with ``proposer``; per-kind and overall figures."""
    rows = []
    t0 = time.perf_counter()
    for m in tqdm(mutants, desc=name, unit="bug", leave=False):
        r = repair(m.problem(), proposer, **kwargs)
        rows.append({"task_id": m.task_id, "kind": m.kind, "repaired": r.repaired,
                     "exact": r.repaired and r.source == m.reference.source,
                     "test_runs": r.test_runs, "iterations": len(r.iterations)})
    seconds = time.perf_counter() - t0
    summary = {"seconds": seconds, "per_kind": {}, "rows": rows}
    for kind in [*KINDS, "all"]:
        sel = [r for r in rows if kind in ("all", r["kind"])]
        fixed = [r for r in sel if r["repaired"]]
        summary["per_kind"][kind] = {
            "mutants": len(sel), "repaired": len(fixed),
            "rate": len(fixed) / len(sel) if sel else float("nan"),
            "exact": sum(r["exact"] for r in sel),
            "runs_per_repair": float(np.mean([r["test_runs"] for r in fixed])) if fixed
            else float("nan"),
            "runs_per_mutant": float(np.mean([r["test_runs"] for r in sel])) if sel
            else float("nan")}
    return summary


def main(argv: list[str] | None = None) -> int:
    """Build the mutants, repair them with each proposer, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="best.pt (default: newest runs/**/best.pt)")
    ap.add_argument("--n", type=int, default=100, help="mutants (default 100)")
    ap.add_argument("--seed", type=int, default=0, help="mutant seed (default 0)")
    ap.add_argument("--iterations", type=int, default=10, help="budget K per bug (default 10)")
    ap.add_argument("--formula", choices=REPAIR_FORMULAS, default="tarantula")
    ap.add_argument("--timeout", type=float, help="per-test limit in s (default: the checkpoint's)")
    ap.add_argument("--dataset", help="draw the mutants from this dataset's test split instead of "
                                      "the checkpoint's (e.g. mbpp_plus for an MBPP model: the same "
                                      "bugs as an MBPP+ model's run)")
    ap.add_argument("--proposers", nargs="+", default=["model", "unigram", "undo"],
                    choices=["model", "unigram", "undo"])
    ap.add_argument("--json", help="also write the figures (and per-bug rows) to this file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        checkpoint = args.checkpoint or find_checkpoint("runs")
    except FileNotFoundError as exc:
        print(f"error: no --checkpoint and {exc}", file=sys.stderr)
        return 2
    model = load_proposer(checkpoint)
    cfg = model.cfg
    timeout = args.timeout or cfg.sandbox.timeout_s
    if args.dataset:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=args.dataset))
    data = prepare(cfg, vocab=model.vocab)
    problems = [enc.problem for enc in data.splits["test"]]
    t0 = time.perf_counter()
    mutants = make_mutants(problems, args.n, seed=args.seed, timeout_s=timeout,
                           memory_mb=cfg.sandbox.memory_mb)
    build_s = time.perf_counter() - t0
    proposers = {"model": model, "unigram": UnigramProposer(model), "undo": UndoProposer(model)}
    results = {}
    for name in args.proposers:
        results[name] = run(proposers[name], mutants, name, iterations=args.iterations,
                            formula=args.formula, timeout_s=timeout,
                            memory_mb=cfg.sandbox.memory_mb, budget_s=cfg.sandbox.budget_s or None)
    print(f"checkpoint {checkpoint} (exp {cfg.exp}); {len(mutants)} mutants of "
          f"{len(problems)} {cfg.data.dataset} test-split programs, seed {args.seed}, built and "
          f"verified in {build_s:.1f} s; budget {args.iterations} candidates, {args.formula}, "
          f"{timeout:g} s per test (a problem's own limit wins), "
          f"{cfg.sandbox.budget_s:g} s per program (0: none)")
    head = f"{'proposer':<9} " + " ".join(f"{k:>16}" for k in [*KINDS, "all"])
    print(head + f" {'exact':>6} {'runs/repair':>12} {'runs/bug':>9} {'wall s':>8}")
    for name, res in results.items():
        cells = " ".join(f"{v['repaired']:>3}/{v['mutants']:<3} {v['rate']:>6.1%}"
                         for v in res["per_kind"].values())
        a = res["per_kind"]["all"]
        print(f"{name:<9} {cells} {a['exact']:>6} {a['runs_per_repair']:>12.2f} "
              f"{a['runs_per_mutant']:>9.2f} {res['seconds']:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": str(checkpoint), "n": len(mutants),
                                               "seed": args.seed, "iterations": args.iterations,
                                               "formula": args.formula, "results": results},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
