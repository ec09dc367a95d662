"""The *search* baseline: test-guided search over the model's one-shot alternatives, at equal cost.

What it measures (DESIGN.md "Metrics"): how far a search guided by the tests gets from the model's
*one-shot* distribution with exactly the program executions the model's iterative refinement spent
on the same program. The model's improvement over one-shot set against the search's shows what
the learned refinement adds beyond trying the model's alternatives where the tests point.

Policy (:func:`search`; deterministic, nothing is drawn at random):

1. **Start**: the model's one-shot program (every corrupted leaf filled with its iteration-0
   argmax) and its test result, copied from the model's own refinement: the program the model's
   ``one_shot`` row scores, so the search's one-shot equals the model's.
2. **Alternatives**: at every corrupted leaf, the model's :data:`SEARCH_TOP_K` most probable leaf
   texts at iteration 0 (:meth:`graphrepair.loop.refine.Refiner.top_k` on the iteration-0 input,
   with the corrupted program's feedback when the experiment gives feedback at iteration 0).
   The model is not called again: no learned refinement.
3. **Candidates**: the current program with *one* corrupted leaf changed to one of its
   alternatives, ordered by the suspiciousness of the leaf's line under :data:`SEARCH_FORMULA`
   (Tarantula, Jones & Harrold, ASE 2005) in the current program's test result (most suspicious
   first; a program that does not load blames its parse-error region,
   :func:`graphrepair.feedback.spectrum.line_spectrum`), then by the alternative's probability
   (higher first), then by leaf order. A candidate whose source this program already executed is
   skipped without a run.
4. **Moves**: each program executes one candidate at a time (the next candidates of all programs
   run as one sandbox batch); the first candidate that passes *more* tests than the current
   program replaces it, and the candidates are formed anew from its own test result.
5. **Stop**: every test passes, the budget is spent, or no candidate is left.

**Budget**: per program, the program executions (cache hits included, as ``program_runs``
counts them) the model's refinement used on it: :attr:`~graphrepair.loop.refine.ProgramState.runs`
after its last iteration. The executions that produced the start (the one-shot's run, and the
corrupted program's run when feedback is given at iteration 0) are shared with the model and
count against the budget, so the search never executes more programs than the model did; a
program the model's one-shot already repairs gets no candidate. Since the search starts from the
model's one-shot program and only accepts programs passing more tests, its pass_rate is at least
the model's one-shot pass_rate at every row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from graphrepair.loop.refine import ProgramState, Refiner, leaf_suspiciousness

__all__ = ["SEARCH_FORMULA", "SEARCH_TOP_K", "candidates", "search"]

SEARCH_TOP_K = 5
"""Alternatives per corrupted leaf: the model's most probable leaf texts at iteration 0."""
SEARCH_FORMULA = "tarantula"
"""The spectrum formula that orders the corrupted leaves (:data:`graphrepair.feedback.spectrum.FORMULAS`)."""


def candidates(state: ProgramState, refiner: Refiner, ids: np.ndarray, probs: np.ndarray,
               formula: str = SEARCH_FORMULA) -> Iterator[list[str | None]]:
    """The single-leaf edits of ``state``'s corrupted leaves, in the search's order (step 3).

    Args:
        state: the current program, with its test ``result``.
        refiner: gives the texts of the ids (:meth:`~graphrepair.loop.refine.Refiner.text`).
        ids: int64 ``[L, k]`` alternative token ids per leaf; probs: float ``[L, k]`` their
            probabilities (:meth:`~graphrepair.loop.refine.Refiner.top_k`); alternatives with
            probability <= 0 are left out.
        formula: the spectrum formula that ranks the leaves' lines.

    Yields:
        Leaf texts ``[L]`` of each candidate program (a new list each time).

    Raises:
        ValueError: ``state`` has no result, or ``ids``/``probs`` do not hold one row per leaf.
    """
    n = len(state.texts)
    if ids.shape[0] != n or probs.shape != ids.shape:
        raise ValueError(f"alternatives for {ids.shape[0]} leaves (probabilities {probs.shape}), but "
                         f"the program has {n} leaves")
    suspicious = leaf_suspiciousness(state, formula)  # (L,); raises without a result
    order = []
    for leaf in np.flatnonzero(state.masked):
        for j in range(ids.shape[1]):
            text = refiner.text(state, ids[leaf, j])
            if probs[leaf, j] > 0 and text != state.texts[leaf]:
                order.append((-float(suspicious[leaf]), -float(probs[leaf, j]), int(leaf), j, text))
    order.sort(key=lambda c: c[:4])
    for *_, leaf, _, text in order:
        texts = list(state.texts)
        texts[leaf] = text
        yield texts


def search(refiner: Refiner, start: Sequence[ProgramState],
           options: Sequence[tuple[np.ndarray, np.ndarray]],
           budgets: Sequence[Sequence[int]]) -> tuple[list[list[ProgramState]], list[int]]:
    """Run the search baseline (module docstring) on every program, programs batched per step.

    Args:
        refiner: executes the candidates (its sandbox settings and result cache).
        start: per program, the model's one-shot state with its ``result``; its ``runs`` are the
            executions already spent on it. Not modified.
        options: per program, (int64 ``[L, k]`` ids, float ``[L, k]`` probabilities) of the
            alternatives (:meth:`~graphrepair.loop.refine.Refiner.top_k` at iteration 0).
        budgets: per program, cumulative execution budgets, one per row (non-decreasing; the
            model's ``runs`` of that program after each iteration; the first >= ``start.runs``).

    Returns:
        ``(rows, runs)``: ``rows[k][i]`` is a copy of program ``i``'s search state once it had
        used at most ``budgets[i][k]`` executions (the start included); ``runs[i]`` the executions
        it used in all, ``<= budgets[i][-1]``.

    Raises:
        ValueError: lengths that differ, a program without a result, or budgets that decrease,
            differ in length, or start below the executions already spent.
    """
    n = len(start)
    if len(options) != n or len(budgets) != n:
        raise ValueError(f"{n} programs but {len(options)} option sets and {len(budgets)} budgets")
    if len({len(b) for b in budgets}) > 1:
        raise ValueError("every program needs one budget per row")
    for s, b in zip(start, budgets):
        if s.result is None:
            raise ValueError(f"{s.enc.problem.task_id}: the start needs its test result")
        if not b or b[0] < s.runs or any(x > y for x, y in zip(b, b[1:])):
            raise ValueError(f"{s.enc.problem.task_id}: budgets {list(b)} must be non-decreasing and "
                             f"start at >= the {s.runs} executions already spent")

    def copy(s: ProgramState) -> ProgramState:
        return dataclasses.replace(s, texts=list(s.texts))

    current = [copy(s) for s in start]
    used = [s.runs for s in start]
    history = [[copy(s)] for s in start]  # history[i][u - start.runs]: the state after u executions
    tried = [{s.source()} for s in start]
    pending: list[Iterator[list[str | None]] | None] = [None] * n
    while True:
        batch: list[tuple[int, ProgramState]] = []
        for i, cur in enumerate(current):
            if cur.passed or used[i] >= budgets[i][-1]:
                continue
            if pending[i] is None:
                pending[i] = candidates(cur, refiner, *options[i])
            texts = next((t for t in pending[i] if cur.enc.source(t) not in tried[i]), None)
            if texts is None:  # no candidate left: stop this program
                pending[i] = iter(())
                continue
            tried[i].add(cur.enc.source(texts))
            batch.append((i, dataclasses.replace(cur, texts=texts, result=None)))
        if not batch:
            break
        refiner.run_tests([c for _, c in batch])
        for i, cand in batch:
            used[i] += 1
            cand.runs = used[i]
            if cand.result.n_passed > current[i].result.n_passed:
                current[i], pending[i] = cand, None  # move: localize again from its own result
            history[i].append(copy(current[i]))
    rows = [[history[i][min(b[k], used[i]) - start[i].runs] for i, b in enumerate(budgets)]
            for k in range(len(budgets[0]))]
    return rows, used
