"""Repairing a buggy program: localize, mask the suspicious leaves, refill, run the tests, iterate.

The loop of ``python -m graphrepair.repair`` (:mod:`graphrepair.repair.cli` is its thin CLI):

1. Run the program's tests (sandbox, per-test coverage). All pass: repaired, zero iterations.
2. Localize: score every executed line with a spectrum formula (:mod:`graphrepair.feedback.spectrum`,
   lines run only while loading, such as ``def`` lines, covered by no test, so scoring 0) and
   group the lines that can hold a maskable leaf by score (:func:`line_groups`: most suspicious
   group first; lines run only while loading after the lines a test ran of the same score; lines
   no test executed last).
3. For the current group, mask the *maskable* leaves (those the proposer can predict: for the
   model, the experiment's eligible categories with texts in its vocabulary, single-line texts
   only) of each line *alone* and ask the :class:`Proposer` (the model) for log-probabilities of
   texts at every masked leaf. Each line's masked program is a fresh iteration-0 state for the
   model, so it keeps the rest of the program as context.
4. Candidates: refills that change at most ``max_changes`` masked leaves (default 1: one-line
   bugs), each new text of the leaf's lexical category (:func:`graphrepair.loop.constraints.text_categories`), ordered by fewer
   changes, then by ``sum(log p(new text) - log p(current text))`` (the model's preference for the
   edit over the program as it is), merged over the group's lines. Candidates already run or that
   do not compile are skipped without a run. One *iteration* = one candidate program executed.
5. A candidate is accepted only when *all* tests pass. The search *widens* to the next group after
   ``tries_per_line`` candidates per line of the group (or when the group has none left); after
   the last group, the candidates left in every group are run, best first. A candidate that
   passes more tests than the current program *moves* the search: it becomes the current
   program and is localized again from its own test runs.
6. Stop when all tests pass, the budget of iterations is spent, or no untried candidate is left.

The original source is never modified; :class:`RepairResult` holds the accepted program. The
trained model's proposer is :class:`graphrepair.repair.proposer.ModelProposer`.
``test_runs`` counts every program execution (the original's first run included).
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from graphrepair.data.problems import Problem
from graphrepair.feedback.spectrum import line_spectrum, score
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.loop.constraints import text_categories
from harness.sandbox import ProgramResult, run_tests

__all__ = ["REPAIR_FORMULAS", "Iteration", "Proposer", "RepairResult", "candidate_edits",
           "line_groups", "repair", "replace_source"]

log = logging.getLogger(__name__)

#: Spectrum formulas the repair loop localizes with.
REPAIR_FORMULAS = ("tarantula", "ochiai", "dstar")


class Proposer(Protocol):
    """What refills masked leaves: the model (:class:`ModelProposer`) or a baseline."""

    def maskable(self, graph: ProgramGraph) -> np.ndarray:
        """bool ``[L]``: leaves this proposer may mask and predict."""

    def propose(self, problem: Problem, graph: ProgramGraph, masks: Sequence[np.ndarray],
                result: ProgramResult) -> list[list[dict[str, float]]]:
        """Per mask (bool ``[L]``), per masked leaf in leaf order: ``{text: log-probability}`` for
        its best texts *and* its current text (``-inf`` when impossible). ``problem.source`` is
        the current program, ``graph`` its graph and ``result`` its test run."""


@dataclass
class Iteration:
    """One candidate program and its test results.

    Attributes:
        iteration: 1-based index.
        passed: tests it passed; total: tests run.
        masked_lines: 1-based lines whose leaves were masked (of the program it was derived from).
        changed_lines: lines whose leaves the candidate changed (same numbering).
    """

    iteration: int
    passed: int
    total: int
    masked_lines: list[int]
    changed_lines: list[int]

    def to_json(self) -> dict:
        """``{"iteration", "passed", "total", "masked_lines", "changed_lines"}``."""
        return dict(self.__dict__)


@dataclass
class RepairResult:
    """Outcome of :func:`repair`.

    Attributes:
        repaired: every test passes on :attr:`source` (true with no iteration when the original
            already passed).
        source: the accepted program when repaired, else the original, unchanged.
        original: the input program.
        initial: the original's test result.
        iterations: one :class:`Iteration` per candidate executed.
        test_runs: programs executed, the original's first run included.
        best_source: the program that passed the most tests (the original when none did better).
        best_passed: tests ``best_source`` passed.
    """

    repaired: bool
    source: str
    original: str
    initial: ProgramResult
    iterations: list[Iteration] = field(default_factory=list)
    test_runs: int = 0
    best_source: str = ""
    best_passed: int = 0

    def to_json(self, checkpoint: str, formula: str) -> dict:
        """The ``--json`` object of ``python -m graphrepair.repair``."""
        return {"repaired": self.repaired, "source": self.source, "checkpoint": checkpoint,
                "formula": formula, "test_runs": self.test_runs,
                "initial": {"passed": self.initial.n_passed, "total": len(self.initial.tests)},
                "iterations": [it.to_json() for it in self.iterations]}


def line_groups(result: ProgramResult, source: str, formula: str,
                lines: Sequence[int]) -> list[list[int]]:
    """``lines`` in groups of equal suspiciousness, most suspicious group first.

    A group holds the lines of one score (:func:`~graphrepair.feedback.spectrum.line_spectrum`
    with its default ``load_lines="no_test"``: a line run only while loading scores 0); lines
    run only while loading (``def`` lines, imports) form their own group after those of the same
    score that a test ran; lines no test executed form the last group. Lines within a group are
    in increasing order.

    Raises:
        ValueError: an unknown formula.
    """
    spectrum = line_spectrum(result, source)
    scores = score(spectrum, formula)
    by_test = {ln for t in result.tests for ln in t.covered_lines}
    value = dict(zip(spectrum.elements.tolist(), scores.tolist()))
    groups: dict[tuple, list[int]] = {}
    for ln in sorted(set(lines)):
        key = (0, -value[ln], ln not in by_test) if ln in value else (1, 0.0, True)
        groups.setdefault(key, []).append(ln)
    return [groups[k] for k in sorted(groups)]


def candidate_edits(current: Sequence[str], options: Sequence[dict[str, float]],
                    max_changes: int = 1, pool: int = 64) -> list[tuple[int, float, tuple]]:
    """Refills of the masked leaves that change 1..``max_changes`` of them, best first.

    Args:
        current: the current text of each masked leaf ``[M]``.
        options: per masked leaf, ``{text: log p}``; the current text's entry (if any) is the
            reference point, else the lowest option's log p minus 1.
        max_changes: most leaves one candidate changes.
        pool: combinations of several changes are formed from the ``pool`` best single ones.

    Returns:
        ``(changes, score, ((k, text), ...))`` with ``k`` indexing the masked leaves and
        ``score = sum(log p(text) - log p(current))`` over the changed leaves; fewer changes
        first, then higher score, then leaf order.
    """
    singles = []
    for k, (cur, opts) in enumerate(zip(current, options)):
        base = opts.get(cur, -np.inf)
        if not np.isfinite(base):
            base = min((v for v in opts.values() if np.isfinite(v)), default=0.0) - 1.0
        singles.extend((lp - base, k, t) for t, lp in opts.items() if t != cur and np.isfinite(lp))
    singles.sort(key=lambda s: (-s[0], s[1], s[2]))
    out = [(1, s, ((k, t),)) for s, k, t in singles]
    for r in range(2, max_changes + 1):
        for combo in itertools.combinations(singles[:pool], r):
            if len({k for _, k, _ in combo}) == r:
                out.append((r, sum(c[0] for c in combo), tuple(sorted((k, t) for _, k, t in combo))))
    out.sort(key=lambda c: (c[0], -c[1], c[2]))
    return out


@dataclass
class _Stage:
    """One group of tied lines: its candidates (from masking each line alone) and a try cap."""

    lines: list[int]
    items: list[tuple] = field(default_factory=list)  # (changes, -score, line, leaf changes)
    built: bool = False
    pos: int = 0
    taken: int = 0


def repair(problem: Problem, proposer: Proposer, *, iterations: int = 10,
           formula: str = "tarantula", test_names: Sequence[str] | None = None,
           timeout_s: float = 5.0, memory_mb: int = 2048, budget_s: float | None = None,
           tries_per_line: int = 2, max_changes: int = 1) -> RepairResult:
    """Repair ``problem.source`` against ``problem.tests`` (the loop of the module docstring).

    Args:
        problem: the buggy program with its tests and setup.
        proposer: refills masked leaves (:class:`ModelProposer` or a baseline).
        iterations: budget K of candidate programs executed (>= 1).
        formula: one of :data:`REPAIR_FORMULAS`.
        test_names: names for the tests (default ``test_0``...).
        timeout_s: per-test limit in s (the problem's own ``timeout_s``, e.g. an EvalPlus
            problem's, wins); memory_mb: per-program limit in MiB.
        budget_s: time budget of one program's tests in s (``None``: none;
            :func:`harness.sandbox.run_tests`): a candidate that loops on each of ~100 tests
            costs at most about this, not 100 × ``timeout_s``.
        tries_per_line: a group of ``n`` tied lines gets ``tries_per_line * n`` candidates in the
            first round before the search widens to the next group.
        max_changes: most leaves one candidate changes.

    Raises:
        ValueError: an unknown formula, ``iterations < 1`` or no tests.
        RuntimeError: the sandbox could not start.
    """
    if formula not in REPAIR_FORMULAS or iterations < 1 or not problem.tests:
        raise ValueError(f"need a formula in {REPAIR_FORMULAS} (got {formula!r}), iterations >= 1 "
                         f"(got {iterations}) and at least one test (got {len(problem.tests)})")
    limits = dict(timeout_s=problem.timeout_s or timeout_s, memory_mb=memory_mb,
                  test_names=test_names, budget_s=budget_s)
    result = run_tests(problem.source, problem.tests, problem.setup, **limits)
    out = RepairResult(result.all_passed, problem.source, problem.source, result, [], 1,
                       problem.source, result.n_passed)
    tried = {problem.source}
    cur, cur_result, stages = problem.source, result, None
    while not out.repaired and len(out.iterations) < iterations:
        if stages is None:  # localize (again) on the current program
            graph = ProgramGraph.from_source(cur)
            leaf_line = np.array([a for a, _ in graph.leaf_lines], dtype=np.int64)
            maskable = proposer.maskable(graph)
            stages = [_Stage(g) for g in line_groups(cur_result, cur, formula,
                                                     leaf_line[maskable].tolist())]
            first_round = True
        pick = _next_stage(stages, tries_per_line, first_round)
        if pick is None and first_round:
            first_round = False  # widened over every group: now any candidate left, best first
            continue
        if pick is None:
            log.info("no untried candidate left after %d iterations", len(out.iterations))
            break
        if not pick.built:
            pick.items = _stage_items(proposer, problem, cur, graph, leaf_line, maskable,
                                      cur_result, pick.lines, max_changes)
            pick.built = True
            continue
        _, _, line, change = pick.items[pick.pos]
        pick.pos += 1
        texts = list(graph.leaf_texts)
        for i, text in change:
            texts[i] = text
        src = graph.to_source(texts)
        if src in tried or not _compiles(src):
            tried.add(src)
            continue
        tried.add(src)
        pick.taken += 1
        res = run_tests(src, problem.tests, problem.setup, **limits)
        out.test_runs += 1
        out.iterations.append(Iteration(len(out.iterations) + 1, res.n_passed, len(res.tests),
                                        pick.lines, sorted({int(leaf_line[i]) for i, _ in change})))
        if res.n_passed > out.best_passed:
            out.best_source, out.best_passed = src, res.n_passed
        if res.all_passed:
            out.repaired, out.source = True, src
        elif res.n_passed > cur_result.n_passed:  # move: localize again from this candidate
            cur, cur_result, stages = src, res, None
    return out


def _next_stage(stages: list[_Stage], tries_per_line: int, first_round: bool) -> _Stage | None:
    """First round: the first group still under its cap with candidates left (an unbuilt group
    counts as having some). Later rounds: the group whose next candidate is best."""
    open_ = [s for s in stages if not s.built or s.pos < len(s.items)]
    if first_round:
        return next((s for s in open_ if s.taken < tries_per_line * len(s.lines)), None)
    return min(open_, key=lambda s: s.items[s.pos][:2] if s.built else (0, -np.inf), default=None)


def _stage_items(proposer: Proposer, problem: Problem, cur: str, graph: ProgramGraph,
                 leaf_line: np.ndarray, maskable: np.ndarray, result: ProgramResult,
                 lines: list[int], max_changes: int) -> list[tuple]:
    """Mask each line of a group alone, collect its candidate edits, merge them best first."""
    items = []
    texts = graph.leaf_texts
    masks = [maskable & (leaf_line == line) for line in lines]
    proposals = proposer.propose(replace_source(problem, cur), graph, masks, result)
    for line, masked, options in zip(lines, masks, proposals):
        idx = np.flatnonzero(masked)
        kept = []  # a refill keeps the leaf's lexical category (else it rarely even parses)
        for i, opts in zip(idx, options):
            cat = graph.leaf_categories[i]
            kept.append({t: v for t, v in opts.items() if t == texts[i] or cat in text_categories(t)})
        for n, sc, change in candidate_edits([texts[i] for i in idx], kept, max_changes):
            items.append((n, -sc, line, tuple((int(idx[k]), t) for k, t in change)))
    items.sort(key=lambda it: it[:3])
    return items


def _compiles(source: str) -> bool:
    """Whether ``source`` compiles (a candidate that does not is not worth a test run)."""
    try:
        with warnings.catch_warnings():  # e.g. invalid escape sequences in the user's program
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            compile(source, "program.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def replace_source(problem: Problem, source: str) -> Problem:
    """``problem`` with another program source (same tests and setup)."""
    return Problem(problem.task_id, source, problem.tests, problem.setup, problem.dataset)
