"""Spectrum-based fault localization: from per-test outcomes and coverage to suspiciousness.

See DESIGN.md, "Feedback". A test *covers* a line when it executed it; a graph node takes its
line's spectrum. A test *fails* unless its outcome is ``"passed"``.

Lines executed while the program loads (``def`` and ``class`` headers, imports, module-level code;
:attr:`harness.results.ProgramResult.load_covered_lines`) are treated as :data:`LOAD_LINES` says:

* ``no_test`` (the default): a test covers only the lines it executed itself. A line executed
  only while loading stays an element of the spectrum (an executed line) with ``f = p = 0``, so it
  scores 0 under every formula and ranks with the lines no failing test ran.
* ``every_test`` (the rule before this option, and that of the experiment configs that do not set
  ``feedback.load_lines``): every test covers every line executed while loading, so such a line
  has ``f = F``, ``p = P`` (Tarantula 1/2 when both totals are > 0, Ochiai ``sqrt(F / (F + P))``)
  and ties with the lines every test runs, among them, often, the faulty one.

Every test did run after the program loaded, but a load-only line is no evidence for or against
any test: ``every_test`` puts it level with a faulty line that every test executes, and a faulty
line's average rank then falls by half the number of load-only lines tied with it
(``benchmarks/load_lines.py`` measures the effect on real one-line bugs; ``docs/feedback.md``).
The price of ``no_test``: a bug on a load-only line (a default argument, a module-level constant)
ranks low.

``failed(e)``/``passed(e)`` = failing/passing tests covering element ``e``; ``F``/``P`` = totals.
Each formula is a numpy function over elements; every score is one correctly rounded operation on
exact integers (Ochiai: its square root; DStar: for an integer exponent), so mathematically equal
scores are bitwise equal and ties exact. An uncovered element, and every element when no test
fails, scores 0 under every formula. A program that does not load runs no test: every test fails
and covers the parse-error region (:func:`error_region`; the 5-feature feedback uses the same rule).
Known limit: a crashed test (or a timed-out one the sandbox had to kill) reports no lines, so it
covers no line (``every_test``: only the lines executed while loading; see
:class:`harness.sandbox.TestResult`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from graphrepair.graphs.graph import ProgramGraph
from harness.sandbox import ProgramResult

log = logging.getLogger(__name__)
_LINE_RE = re.compile(r'"program\.py", line (\d+)|line (\d+)')

__all__ = ["FORMULAS", "LOAD_LINES", "Ranks", "Spectrum", "binary", "check_load_lines", "dstar", "error_region", "line_spectrum",
           "node_scores",
           "node_spectrum", "ochiai", "ranks", "score", "tarantula"]


@dataclass(frozen=True)
class Spectrum:
    """Coverage spectrum of ``E`` elements (program lines or graph nodes).

    Attributes:
        elements: int64 ``[E]`` element ids, increasing (1-based lines, or node indices).
        failed: int64 ``[E]`` number of failing tests covering each element, ``f``.
        passed: int64 ``[E]`` number of passing tests covering each element, ``p``.
        total_failed: number of failing tests, ``F``.
        total_passed: number of passing tests, ``P``.
    """

    elements: np.ndarray
    failed: np.ndarray
    passed: np.ndarray
    total_failed: int
    total_passed: int


def _check(failed: np.ndarray, passed: np.ndarray, total_failed: int,
           total_passed: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a spectrum; return ``failed`` and ``passed`` as float64 (exact integers)."""
    f, p, F, P = np.asarray(failed), np.asarray(passed), total_failed, total_passed  # noqa: N806
    if f.shape != p.shape or f.ndim != 1:
        raise ValueError(f"failed and passed must be 1-D arrays of one shape, got {f.shape} and "
                         f"{p.shape}")
    if F < 0 or P < 0 or (f < 0).any() or (p < 0).any() or (f > F).any() or (p > P).any():
        raise ValueError(f"need 0 <= failed <= F and 0 <= passed <= P; got F={F}, P={P}, "
                         f"failed in [{f.min(initial=0)}, {f.max(initial=0)}], passed in "
                         f"[{p.min(initial=0)}, {p.max(initial=0)}]")
    return f.astype(np.float64), p.astype(np.float64)


def binary(failed: np.ndarray, passed: np.ndarray, total_failed: int,
           total_passed: int) -> np.ndarray:
    """Failing-coverage signal: 1 if a failing test covers the element, else 0.

    The "covered by a failing test" node feature of the Phase 1.5 record (Experiments 1, 2).

    Args:
        failed: int ``[E]`` failing tests covering each element, ``f``.
        passed: int ``[E]`` passing tests covering each element, ``p`` (checked, unused).
        total_failed: ``F``, number of failing tests.
        total_passed: ``P``, number of passing tests.

    Returns:
        float64 ``[E]`` in {0, 1}. No 0/0 case: F = 0 or an uncovered element give 0.

    Raises:
        ValueError: if the shapes differ or not ``0 <= f <= F``, ``0 <= p <= P``.
    """
    f, _ = _check(failed, passed, total_failed, total_passed)
    return (f > 0).astype(np.float64)


def tarantula(failed: np.ndarray, passed: np.ndarray, total_failed: int,
              total_passed: int) -> np.ndarray:
    """Tarantula: ``(f/F) / (f/F + p/P)``.

    Jones & Harrold, "Empirical evaluation of the Tarantula automatic fault-localization
    technique", ASE 2005. Computed as ``f·P / (f·P + p·F)`` (one division of exact integers).

    0/0 conventions: a ratio with a zero total is 0 (``f/F := 0`` when F = 0, ``p/P := 0`` when
    P = 0), and the score is 0 when both ratios are 0. Hence: no failing test (F = 0) → 0 for
    every element; no passing test (P = 0) → 1 if ``f > 0`` else 0; uncovered element → 0.

    Args:
        failed: int ``[E]`` ``f`` of each element.
        passed: int ``[E]`` ``p`` of each element.
        total_failed: ``F``.
        total_passed: ``P``.

    Returns:
        float64 ``[E]`` in [0, 1].

    Raises:
        ValueError: as :func:`binary`.
    """
    f, p = _check(failed, passed, total_failed, total_passed)
    if total_failed == 0:
        return np.zeros_like(f)
    if total_passed == 0:
        return (f > 0).astype(np.float64)
    num, den = f * total_passed, f * total_passed + p * total_failed
    return np.divide(num, den, out=np.zeros_like(f), where=den > 0)


def ochiai(failed: np.ndarray, passed: np.ndarray, total_failed: int,
           total_passed: int) -> np.ndarray:
    """Ochiai: ``f / sqrt(F·(f + p))``.

    Abreu, Zoeteweij & van Gemund, "An evaluation of similarity coefficients for software fault
    localization", PRDC 2006, and "On the accuracy of spectrum-based fault localization", TAICPART
    2007. Computed as ``sqrt(f² / (F·(f + p)))`` (exact ties).

    0/0 convention: the denominator is 0 only when F = 0 (no failing test) or ``f + p = 0``
    (uncovered element); then ``f = 0`` too and the score is 0. With P = 0 the score is
    ``sqrt(f/F)``.

    Args:
        failed: int ``[E]`` ``f`` of each element.
        passed: int ``[E]`` ``p`` of each element.
        total_failed: ``F``.
        total_passed: ``P``.

    Returns:
        float64 ``[E]`` in [0, 1].

    Raises:
        ValueError: as :func:`binary`.
    """
    f, p = _check(failed, passed, total_failed, total_passed)
    den = total_failed * (f + p)
    return np.sqrt(np.divide(f * f, den, out=np.zeros_like(f), where=den > 0))


def dstar(failed: np.ndarray, passed: np.ndarray, total_failed: int, total_passed: int,
          star: float = 2.0) -> np.ndarray:
    """DStar: ``f^* / (p + (F − f))``.

    Wong, Debroy, Gao & Li, "The DStar method for effective software fault localization", IEEE
    Transactions on Reliability 63(1), 2014; they recommend ``* = 2`` (the default).

    0/0 conventions: the denominator is 0 only when ``p = 0`` and ``f = F``. If F = 0 (no failing
    test, so ``f = 0``) the score is 0. If F > 0 (covered by every failing test and no passing one,
    the limit +inf) the score is ``F^* + 1``: finite, and larger than any score with a non-zero
    denominator (those are at most ``F^*``), so such elements rank first. An uncovered element
    scores ``0 / F = 0``. Scores are not bounded by 1.

    Args:
        failed: int ``[E]`` ``f`` of each element.
        passed: int ``[E]`` ``p`` of each element.
        total_failed: ``F``.
        total_passed: ``P``.
        star: the exponent ``*``, finite and > 0.

    Returns:
        float64 ``[E]`` in [0, F^* + 1].

    Raises:
        ValueError: as :func:`binary`, or if ``star`` is not finite and > 0.
    """
    if not 0 < star < np.inf:
        raise ValueError(f"DStar exponent star must be finite and > 0 (Wong et al. use 2), got "
                         f"{star!r}")
    f, p = _check(failed, passed, total_failed, total_passed)
    num, den = f**star, p + (total_failed - f)
    out = np.where((den == 0) & (total_failed > 0), float(total_failed) ** star + 1.0, 0.0)
    return np.divide(num, den, out=out, where=den > 0)


#: Treatments of the lines executed while the program loads (module docstring); the first is the
#: default of :func:`line_spectrum`.
LOAD_LINES = ("no_test", "every_test")

#: Formula name -> function ``(failed, passed, total_failed, total_passed) -> scores``.
FORMULAS: dict[str, Callable[..., np.ndarray]] = {
    "binary": binary, "tarantula": tarantula, "ochiai": ochiai, "dstar": dstar}


def score(spectrum: Spectrum, formula: str, *, star: float = 2.0) -> np.ndarray:
    """Suspiciousness of every element of ``spectrum`` under ``formula``.

    Args:
        spectrum: the spectrum of ``E`` elements.
        formula: a key of :data:`FORMULAS`: ``binary``, ``tarantula``, ``ochiai``, ``dstar``.
        star: DStar's exponent (ignored by the other formulas).

    Returns:
        float64 ``[E]``, aligned with ``spectrum.elements``.

    Raises:
        ValueError: for an unknown formula (the message lists the valid ones), or as the formula.
    """
    if formula not in FORMULAS:
        raise ValueError(f"unknown formula {formula!r}; choose one of {sorted(FORMULAS)}")
    extra = {"star": star} if formula == "dstar" else {}
    return FORMULAS[formula](spectrum.failed, spectrum.passed, spectrum.total_failed,
                             spectrum.total_passed, **extra)


class Ranks(NamedTuple):
    """Ranks with ties, 1 = most suspicious, each ``[E]``.

    Attributes:
        best: int64, ``1 + #elements scoring strictly higher``.
        average: float64, ``(best + worst) / 2`` (the expected rank in a random tie order).
        worst: int64, ``#elements scoring higher or equal`` (itself included).
    """

    best: np.ndarray
    average: np.ndarray
    worst: np.ndarray


def ranks(scores: np.ndarray) -> Ranks:
    """Best/average/worst rank of each element by descending score, ties counted as usual.

    Args:
        scores: float ``[E]`` suspiciousness scores, no NaN.

    Returns:
        :class:`Ranks`, aligned with ``scores``; ``1 <= best <= average <= worst <= E``.

    Raises:
        ValueError: if ``scores`` is not 1-D or holds NaN.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or np.isnan(s).any():
        raise ValueError(f"scores must be a 1-D array without NaN, got shape {s.shape}")
    ascending = np.sort(s)
    higher = len(s) - np.searchsorted(ascending, s, side="right")
    higher_or_equal = len(s) - np.searchsorted(ascending, s, side="left")
    best, worst = (higher + 1).astype(np.int64), higher_or_equal.astype(np.int64)
    return Ranks(best, (best + worst) / 2.0, worst)


def error_region(source: str, message: str) -> list[int]:
    """Lines blamed for a program that does not load (DESIGN.md, "Feedback").

    Args:
        source: the program text.
        message: the sandbox's load message (a traceback naming ``"program.py", line N``).

    Returns:
        Sorted 1-based lines of the tree-sitter ``ERROR``/``MISSING`` nodes of ``source``; when
        tree-sitter parses it cleanly (an error only the compiler or the import finds), the last
        line the message names; ``[]`` when neither says anything.
    """
    lines = ProgramGraph.from_source(source).error_lines
    if lines:
        return sorted(set(lines))
    found = [int(a or b) for a, b in _LINE_RE.findall(message)]
    return found[-1:]


def line_spectrum(result: ProgramResult, source: str, *, load_lines: str = "no_test") -> Spectrum:
    """Per-line spectrum of a program from its sandbox result.

    Args:
        result: :func:`harness.sandbox.run_tests` result of ``source``.
        source: the program text that was run (read only when it did not load, to find the
            parse-error region).
        load_lines: which tests cover the lines executed while loading, one of
            :data:`LOAD_LINES` (module docstring): ``no_test`` (default; only the tests that
            executed them themselves) or ``every_test``.

    Returns:
        :class:`Spectrum` over every executed line: lines run while loading or by any test; for
        a program that did not load, the parse-error region (every test failing, covering it;
        ``load_lines`` plays no part).

    Raises:
        ValueError: an unknown ``load_lines``.
        UnicodeEncodeError: if the program did not load and ``source`` holds lone surrogates.
    """
    check_load_lines(load_lines)
    n = len(result.tests)
    failing = np.array([t.outcome != "passed" for t in result.tests], dtype=bool)
    if result.load_outcome != "passed":
        region = np.array(error_region(source, result.load_message), dtype=np.int64)
        log.debug("program did not load (%s); error region lines %s", result.load_outcome,
                  region.tolist())
        per_test = [region] * n
        load = np.zeros(0, np.int64)
        failing[:] = True
    else:
        per_test = [np.asarray(t.covered_lines, dtype=np.int64) for t in result.tests]
        load = np.asarray(result.load_covered_lines, dtype=np.int64)
    elements = np.unique(np.concatenate([load, *per_test, np.zeros(0, np.int64)]))
    covered = np.zeros((n, len(elements)), dtype=bool)  # (tests, elements)
    for i, lines in enumerate(per_test):
        covered[i, np.searchsorted(elements, lines)] = True
    if load_lines == "every_test":
        covered |= np.isin(elements, load)[None, :]
    return Spectrum(elements, covered[failing].sum(0).astype(np.int64),
                    covered[~failing].sum(0).astype(np.int64), int(failing.sum()),
                    int(n - failing.sum()))


def check_load_lines(load_lines: str) -> None:
    """Raise ValueError naming the valid treatments unless ``load_lines`` is one of :data:`LOAD_LINES`."""
    if load_lines not in LOAD_LINES:
        raise ValueError(f"unknown load_lines {load_lines!r}; choose one of {list(LOAD_LINES)} "
                         "(graphrepair.feedback.spectrum)")


def node_spectrum(spectrum: Spectrum, node_lines: np.ndarray) -> Spectrum:
    """Per-graph-node spectrum: each node takes the spectrum of its line.

    Args:
        spectrum: a per-line spectrum (:func:`line_spectrum`).
        node_lines: int ``[N]`` 1-based line of each graph node, -1 for none
            (:meth:`graphrepair.features.encoding.EncodedProgram.node_lines` of the current texts).

    Returns:
        :class:`Spectrum` with ``elements = arange(N)``; nodes on unexecuted lines get f = p = 0.
        Leaves are nodes: index with ``graph.leaf_nodes`` for a per-leaf spectrum.
    """
    idx, hit = _line_index(spectrum.elements, node_lines)
    f = np.where(hit, spectrum.failed[idx], 0).astype(np.int64)
    p = np.where(hit, spectrum.passed[idx], 0).astype(np.int64)
    return Spectrum(np.arange(len(idx), dtype=np.int64), f, p, spectrum.total_failed,
                    spectrum.total_passed)


def node_scores(lines: np.ndarray, scores: np.ndarray, node_lines: np.ndarray) -> np.ndarray:
    """Map per-line scores to graph nodes: the ``test_signal`` node feature (6-feature model).

    Experiments 1, 2 use ``binary`` scores, Experiment 4 ``tarantula``. Nodes on lines absent from
    ``lines`` (unexecuted) get 0, the score of an uncovered element under every formula, so
    ``node_scores(s.elements, score(s, x), nl) == score(node_spectrum(s, nl), x)``.

    Args:
        lines: int ``[E]`` increasing 1-based lines (``Spectrum.elements``).
        scores: float ``[E]`` score of each line.
        node_lines: int ``[N]`` 1-based line of each node, -1 for none.

    Returns:
        float32 ``[N]``.

    Raises:
        ValueError: if ``lines`` and ``scores`` differ in shape.
    """
    lines, scores = np.asarray(lines, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    if lines.shape != scores.shape:
        raise ValueError(f"lines {lines.shape} and scores {scores.shape} must have one shape")
    idx, hit = _line_index(lines, node_lines)
    return np.where(hit, scores[idx], 0.0).astype(np.float32)


def _line_index(lines: np.ndarray, node_lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each node's line in increasing ``lines`` (clipped) and whether it is there."""
    node_lines = np.asarray(node_lines, dtype=np.int64)
    if len(lines) == 0:
        return np.zeros(len(node_lines), np.int64), np.zeros(len(node_lines), bool)
    idx = np.minimum(np.searchsorted(lines, node_lines), len(lines) - 1)
    return idx, lines[idx] == node_lines
