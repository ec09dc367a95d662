"""Real one-line bugs: single-token mutants of reference programs that really fail their tests.

A *mutant* is a reference program (e.g. an MBPP solution) with exactly one leaf token of its
tree-sitter graph (:class:`graphrepair.graphs.graph.ProgramGraph`) replaced, so the bug sits on one line.
Four kinds, after the classic mutation operators (AOR, ROR, off-by-one, wrong variable):

* ``operator``: an arithmetic or bitwise operator of a ``binary_operator`` or an augmented
  assignment swapped (``+`` <-> ``-``, ``*`` -> ``/``, ``//`` -> ``/``, ``+=`` <-> ``-=`` ...; see
  :data:`OPERATOR_SWAPS`); unary minus, unpacking ``*`` and the like are never touched.
* ``comparison``: a comparison operator of a ``comparison_operator`` swapped (``<`` -> ``<=`` or
  ``>``, ``==`` <-> ``!=`` ...; :data:`COMPARISON_SWAPS`).
* ``off_by_one``: a decimal integer literal ``n`` becomes ``n + 1`` or ``n - 1`` (never below 0).
* ``wrong_variable``: a *use* (``ast.Name`` in load context) of a local name of a function (a
  parameter or a name the function assigns, outside nested functions, classes, lambdas and
  comprehensions; ``global``/``nonlocal`` names excluded) replaced by another local name of the
  same function.

:func:`make_mutants` draws mutants with an explicit seed, spread evenly over the kinds and over
programs (at most one mutant per program and kind unless the programs run out), and keeps only
those that *really fail* at least one of their tests in the sandbox (a test fails unless it
passes: failed, error, timeout or crashed); its reference must pass all of them. Equivalent
mutants (those the tests cannot tell apart from the reference) are dropped and counted.
"""

from __future__ import annotations

import ast
import bisect
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from graphrepair.data.problems import Problem
from graphrepair.graphs.graph import LeafCategory, ProgramGraph
from harness.cache import ResultCache
from harness.sandbox import Job, run_batch

__all__ = ["COMPARISON_SWAPS", "KINDS", "Mutant", "Mutation", "OPERATOR_SWAPS", "apply_mutation",
           "make_mutants",
           "mutations"]

log = logging.getLogger(__name__)

#: The four mutation kinds, in the order quotas are filled.
KINDS = ("operator", "comparison", "off_by_one", "wrong_variable")

#: Arithmetic/bitwise operator -> its possible replacements (binary operators and augmented
#: assignments only).
OPERATOR_SWAPS: dict[str, tuple[str, ...]] = {
    "+": ("-",), "-": ("+",), "*": ("/", "+"), "/": ("*", "//"), "//": ("/", "%"),
    "%": ("//",), "**": ("*",), "&": ("|",), "|": ("&",), "^": ("&",), "<<": (">>",),
    ">>": ("<<",), "+=": ("-=",), "-=": ("+=",), "*=": ("/=", "+="), "/=": ("*=",),
    "//=": ("/=",), "%=": ("//=",),
}
#: Comparison operator -> its possible replacements.
COMPARISON_SWAPS: dict[str, tuple[str, ...]] = {
    "<": ("<=", ">"), "<=": ("<", ">="), ">": (">=", "<"), ">=": (">", "<="), "==": ("!=",),
    "!=": ("==",),
}
_DECIMAL = re.compile(r"[0-9]+")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp,
           ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass(frozen=True)
class Mutation:
    """One single-token change of a program.

    Attributes:
        kind: one of :data:`KINDS`.
        leaf: index of the changed leaf token in the program's graph (source order).
        line: 1-based line of that token.
        original: the token's text in the reference program.
        replacement: its text in the mutant.
    """

    kind: str
    leaf: int
    line: int
    original: str
    replacement: str


@dataclass(frozen=True)
class Mutant:
    """A verified buggy program: a reference program with one :class:`Mutation` applied.

    Attributes:
        task_id: ``"<reference task id>/<kind>/<leaf>"``, unique per mutation site and kind.
        reference: the reference problem (its ``source`` passes all its tests).
        mutation: the change.
        source: the mutant program.
        failing: number of the reference's tests the mutant fails (>= 1).
    """

    task_id: str
    reference: Problem
    mutation: Mutation
    source: str
    failing: int

    @property
    def kind(self) -> str:
        """The mutation kind (one of :data:`KINDS`)."""
        return self.mutation.kind

    def problem(self) -> Problem:
        """The mutant as a :class:`Problem` (buggy ``source``, the reference's tests and setup)."""
        return replace(self.reference, task_id=self.task_id, source=self.source)


def _leaf_positions(graph: ProgramGraph, source: str) -> list[tuple[int, int]]:
    """(1-based line, UTF-8 byte column) of each leaf's first character: ``ast``'s coordinates."""
    starts = [0] + [m.end() for m in _LINE_BREAK.finditer(source)]
    out, pos = [], 0
    for gap, text in zip(graph.gaps, graph.leaf_texts):
        pos += len(gap)
        line = bisect.bisect_right(starts, pos)
        out.append((line, len(source[starts[line - 1] : pos].encode("utf-8"))))
        pos += len(text)
    return out


def _walk_scope(node: ast.AST) -> Iterator[ast.AST]:
    """Descendants of ``node`` that belong to its own scope (nested scopes are not entered)."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, _SCOPES):
            yield from _walk_scope(child)


def _function_locals(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[set[str], list[ast.Name]]:
    """(local names of ``fn``, the ``Name`` loads of its own scope)."""
    a = fn.args
    names = {arg.arg for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if arg}
    declared: set[str] = set()
    loads: list[ast.Name] = []
    for stmt in fn.body:
        for node in (stmt,) if isinstance(stmt, _SCOPES) else (stmt, *_walk_scope(stmt)):
            if isinstance(node, ast.Global | ast.Nonlocal):
                declared.update(node.names)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                loads.append(node)
            elif isinstance(node, ast.Name):
                names.add(node.id)
    return names - declared, loads


def _wrong_variable_sites(source: str, graph: ProgramGraph) -> list[Mutation]:
    try:
        with warnings.catch_warnings():  # e.g. invalid escape sequences in MBPP programs
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            tree = ast.parse(source)
    except SyntaxError:
        return []
    leaf_at = {pos: i for i, pos in enumerate(_leaf_positions(graph, source))}
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        local_names, loads = _function_locals(fn)
        for name in loads:
            i = leaf_at.get((name.lineno, name.col_offset))
            if name.id not in local_names or i is None or graph.leaf_texts[i] != name.id:
                continue
            line = graph.leaf_lines[i][0]
            out.extend(Mutation("wrong_variable", i, line, name.id, other)
                       for other in sorted(local_names - {name.id}))
    return out


def mutations(source: str) -> dict[str, list[Mutation]]:
    """Every single-token mutation of ``source``, per kind (see the module docstring).

    Args:
        source: a program that parses (mutations of a program that does not are not searched).

    Returns:
        ``{kind: [Mutation, ...]}`` for every kind of :data:`KINDS` (possibly empty lists), in
        source order; a site with several replacements gives one entry per replacement.
    """
    graph = ProgramGraph.from_source(source)
    out: dict[str, list[Mutation]] = {k: [] for k in KINDS}
    if graph.has_error:
        return out
    for i, (node, text, cat) in enumerate(zip(graph.leaf_nodes, graph.leaf_texts,
                                              graph.leaf_categories)):
        parent = graph.node_types[graph.parent[node]]
        line = graph.leaf_lines[i][0]
        if cat is LeafCategory.OPERATOR and parent in ("binary_operator", "augmented_assignment"):
            out["operator"].extend(Mutation("operator", i, line, text, r)
                                   for r in OPERATOR_SWAPS.get(text, ()))
        elif cat is LeafCategory.OPERATOR and parent == "comparison_operator":
            out["comparison"].extend(Mutation("comparison", i, line, text, r)
                                     for r in COMPARISON_SWAPS.get(text, ()))
        elif graph.node_types[node] == "integer" and _DECIMAL.fullmatch(text):
            value = int(text)
            out["off_by_one"].extend(Mutation("off_by_one", i, line, text, str(v))
                                     for v in (value - 1, value + 1) if v >= 0)
    out["wrong_variable"] = _wrong_variable_sites(source, graph)
    return out


def apply_mutation(source: str, mutation: Mutation) -> str:
    """``source`` with ``mutation`` applied (its leaf text replaced).

    Raises:
        ValueError: if the leaf's text is not ``mutation.original``.
    """
    graph = ProgramGraph.from_source(source)
    texts = list(graph.leaf_texts)
    if texts[mutation.leaf] != mutation.original:
        raise ValueError(f"leaf {mutation.leaf} is {texts[mutation.leaf]!r}, not "
                         f"{mutation.original!r}: the mutation belongs to another program")
    texts[mutation.leaf] = mutation.replacement
    return graph.to_source(texts)


def _candidates(pool: Sequence[Problem], sites: Sequence[dict[str, list[Mutation]]], kind: str,
                rng: np.random.Generator) -> Iterator[tuple[Problem, Mutation]]:
    """Round robin over the programs (in a seeded order): one untried site of ``kind`` each."""
    queues = []
    for j in rng.permutation(len(pool)):
        options = sites[j][kind]
        if options:
            queues.append((pool[j], [options[k] for k in rng.permutation(len(options))]))
    depth = 0
    while queues:
        queues = [(p, q) for p, q in queues if depth < len(q)]
        for p, q in queues:
            yield p, q[depth]
        depth += 1


def make_mutants(
    problems: Sequence[Problem],
    n: int,
    *,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    timeout_s: float = 2.0,
    memory_mb: int = 2048,
    workers: int = 2,
    cache: ResultCache | None = None,
) -> list[Mutant]:
    """Draw ``n`` verified one-line mutants of ``problems``, spread evenly over ``kinds``.

    Quotas: ``n // len(kinds)`` per kind, the first ``n % len(kinds)`` kinds one more. Within a
    kind, programs are visited in a seeded order, one random site each per round, so a program
    gives a second mutant of a kind only when every program has given one. Candidates are run in
    the sandbox (``run_batch``) in chunks; a candidate is kept when at least one test does not pass.
    Problems whose reference does not pass all its tests are left out.

    Args:
        problems: reference programs with tests (e.g. an MBPP split).
        n: number of mutants wanted (>= 0).
        seed: seeds the order of programs, sites and replacements.
        kinds: a subset of :data:`KINDS`.
        timeout_s: per-test limit in s; memory_mb: per-program limit in MiB; workers:
            concurrent sandbox runs; cache: an optional result cache.

    Returns:
        The mutants, grouped by kind in ``kinds`` order. Fewer than ``n`` when the programs run
        out of failing mutants of a kind (logged as a warning).

    Raises:
        ValueError: an unknown kind or a negative ``n``.
    """
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or n < 0:
        raise ValueError(f"need n >= 0 and kinds from {KINDS}; got n={n}, unknown kinds {unknown}")
    rng = np.random.default_rng(seed)
    run = dict(workers=workers, timeout_s=timeout_s, memory_mb=memory_mb, cache=cache)
    refs = run_batch([Job(p.task_id, p.source, p.tests, p.setup, p.timeout_s) for p in problems], **run)
    pool = [p for p, r in zip(problems, refs) if r.all_passed]
    if len(pool) < len(problems):
        log.info("%d of %d reference programs fail their own tests; left out",
                 len(problems) - len(pool), len(problems))
    sites = [mutations(p.source) for p in pool]
    out: list[Mutant] = []
    for k, kind in enumerate(kinds):
        quota = n // len(kinds) + (k < n % len(kinds))
        found: list[Mutant] = []
        tried = equivalent = 0
        stream = _candidates(pool, sites, kind, rng)
        while len(found) < quota:
            chunk = [c for _, c in zip(range(max(4, 2 * (quota - len(found)))), stream)]
            if not chunk:
                break
            sources = [apply_mutation(p.source, m) for p, m in chunk]
            results = run_batch([Job(p.task_id, s, p.tests, p.setup, p.timeout_s)
                                 for (p, _), s in zip(chunk, sources)], **run)
            for (p, m), s, r in zip(chunk, sources, results):
                tried += 1
                if r.all_passed:
                    equivalent += 1
                elif len(found) < quota:
                    found.append(Mutant(f"{p.task_id}/{kind}/{m.leaf}", p, m, s,
                                        len(r.tests) - r.n_passed))
        log.info("%s: %d mutants (%d candidates run, %d passed every test and were dropped)",
                 kind, len(found), tried, equivalent)
        if len(found) < quota:
            log.warning("only %d of %d %s mutants: the programs ran out of failing sites",
                        len(found), quota, kind)
        out.extend(found)
    return out
