"""Tests for graphrepair.feedback.spectrum: spectra from real sandbox runs, formulas, 0/0 cases, ranks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphrepair.feedback.spectrum import (
    FORMULAS,
    Spectrum,
    binary,
    dstar,
    line_spectrum,
    node_scores,
    node_spectrum,
    ochiai,
    ranks,
    score,
    tarantula,
)
from graphrepair.graphs.graph import ProgramGraph
from harness.sandbox import ProgramResult, TestResult, run_tests

# The mid() program of Jones & Harrold's Tarantula study (ASE 2005), in Python, with the fault on
# line 7 (``m = y`` where ``m = x`` is right), and their six test inputs; only (2, 1, 3) fails.
MID = """def mid(x, y, z):
    m = z
    if y < z:
        if x < y:
            m = y
        elif x < z:
            m = y  # fault: should be m = x
    else:
        if x > y:
            m = y
        elif x > z:
            m = x
    return m
"""
MID_INPUTS = [(3, 3, 5), (1, 2, 3), (3, 2, 1), (5, 5, 5), (5, 3, 4), (2, 1, 3)]
MID_TESTS = [f"assert mid({x}, {y}, {z}) == {sorted((x, y, z))[1]}" for x, y, z in MID_INPUTS]
FAULT = 7


@pytest.fixture(scope="module")
def mid_spectrum():
    result = run_tests(MID, MID_TESTS, timeout_s=2)
    assert [t.outcome for t in result.tests] == ["passed"] * 5 + ["failed"]
    return line_spectrum(result, MID)


def test_mid_spectrum_matches_the_paper(mid_spectrum):
    s = mid_spectrum
    assert (s.total_failed, s.total_passed) == (1, 5)
    # Executed lines: def (while loading only, so covered by no test) and the statements tests
    # reached.
    assert s.elements.tolist() == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 13]
    spectrum = dict(zip(s.elements.tolist(), zip(s.failed.tolist(), s.passed.tolist())))
    assert spectrum[FAULT] == (1, 1)
    assert spectrum[6] == (1, 2) and spectrum[4] == (1, 3) and spectrum[1] == (0, 0)
    assert spectrum[9] == (0, 2) and spectrum[5] == (0, 1)
    result = run_tests(MID, MID_TESTS, timeout_s=2)
    every = line_spectrum(result, MID, load_lines="every_test")
    assert every.elements.tolist() == s.elements.tolist()
    assert (every.failed[0], every.passed[0]) == (1, 5)  # def counted for every test
    assert (every.failed[1:] == s.failed[1:]).all() and (every.passed[1:] == s.passed[1:]).all()


@pytest.mark.parametrize("formula, value, best, worst", [
    ("tarantula", 5 / 6, 1, 1),  # (1/1) / (1/1 + 1/5), as in the paper's table
    ("ochiai", 1 / np.sqrt(2), 1, 1),
    ("dstar", 1.0, 1, 1),  # 1^2 / (1 + 0)
    ("binary", 1.0, 1, 6),  # 6 lines are covered by the failing test (not the def line)
])
def test_mid_faulty_line_rank(mid_spectrum, formula, value, best, worst):
    scores = score(mid_spectrum, formula)
    r = ranks(scores)
    at = mid_spectrum.elements.tolist().index(FAULT)
    assert scores[at] == pytest.approx(value)
    assert (r.best[at], r.worst[at]) == (best, worst)


def test_mid_node_scores_follow_their_lines(mid_spectrum):
    graph = ProgramGraph.from_source(MID)
    node_lines = np.asarray(graph.node_lines)
    signal = node_scores(mid_spectrum.elements, score(mid_spectrum, "tarantula"), node_lines)
    assert signal.dtype == np.float32 and signal.shape == (graph.num_nodes,)
    assert np.allclose(signal[node_lines == FAULT], 5 / 6)
    assert (signal[node_lines == 8] == 0).all()  # `else:` never executes as a line
    assert signal.max() == signal[node_lines == FAULT].max()


def _result(load, tests):
    return ProgramResult(tests=tuple(TestResult(f"test_{i}", o, "", 0.0, tuple(c))
                                     for i, (o, c) in enumerate(tests)),
                         load_outcome="passed", load_message="", load_covered_lines=tuple(load))


def test_hand_computed_spectrum_and_scores():
    # error and timeout count as failing; load lines count for every test (timeout included).
    result = _result([1], [("passed", [2, 3]), ("failed", [2, 4]), ("error", [5]),
                           ("timeout", [])])
    s = line_spectrum(result, "unused: the program loaded", load_lines="every_test")
    assert s.elements.tolist() == [1, 2, 3, 4, 5]
    assert s.failed.tolist() == [3, 1, 0, 1, 1] and s.passed.tolist() == [1, 1, 1, 0, 0]
    assert (s.total_failed, s.total_passed) == (3, 1)
    assert np.allclose(score(s, "tarantula"), [0.5, 0.25, 0, 1, 1])
    assert np.allclose(score(s, "ochiai"), [3 / np.sqrt(12), 1 / np.sqrt(6), 0, 1 / np.sqrt(3),
                                            1 / np.sqrt(3)])
    assert np.allclose(score(s, "dstar"), [9, 1 / 3, 0, 0.5, 0.5])
    assert np.allclose(score(s, "dstar", star=3), [27, 1 / 3, 0, 0.5, 0.5])
    assert score(s, "binary").tolist() == [1, 1, 0, 1, 1]
    r = ranks(score(s, "tarantula"))
    assert r.best.tolist() == [3, 4, 5, 1, 1] and r.worst.tolist() == [3, 4, 5, 2, 2]
    assert r.average.tolist() == [3, 4, 5, 1.5, 1.5]
    # the default: load line 1 is covered by no test; line 2 moves up from rank 4 to 3
    s = line_spectrum(result, "unused: the program loaded")
    assert s.elements.tolist() == [1, 2, 3, 4, 5]
    assert s.failed.tolist() == [0, 1, 0, 1, 1] and s.passed.tolist() == [0, 1, 1, 0, 0]
    assert (s.total_failed, s.total_passed) == (3, 1)
    assert np.allclose(score(s, "tarantula"), [0, 0.25, 0, 1, 1])
    assert np.allclose(score(s, "ochiai"), [0, 1 / np.sqrt(6), 0, 1 / np.sqrt(3), 1 / np.sqrt(3)])
    r = ranks(score(s, "tarantula"))
    assert r.best.tolist() == [4, 3, 4, 1, 1] and r.worst.tolist() == [5, 3, 5, 2, 2]
    with pytest.raises(ValueError, match="unknown load_lines 'sometimes'"):
        line_spectrum(result, "", load_lines="sometimes")


# math.pi * r * 2 where r ** 2 is right: area(2) passes by coincidence (2 * 2 == 2 ** 2)
AREA = "import math\ndef area(r):\n    return math.pi * r * 2\n"
AREA_TESTS = ["assert area(2) == math.pi * 4", "assert area(3) == math.pi * 9",
              "assert area(1) == math.pi"]


@pytest.mark.parametrize("formula, value", [("tarantula", 0.5), ("ochiai", 2 / np.sqrt(6))])
def test_load_only_lines_no_longer_tie_with_the_faulty_line(formula, value):
    # Line 3 (the fault) is run by every test: f = 2, p = 1. Lines 1 and 2 run only while
    # loading. Counted for every test they have the same (2, 1) and the same score, a three-way
    # tie: average rank (1 + 3) / 2 = 2. Counted for no test they score 0: the fault ranks 1.
    result = run_tests(AREA, AREA_TESTS, timeout_s=2)
    assert [t.outcome for t in result.tests] == ["passed", "failed", "failed"]
    assert result.load_covered_lines == (1, 2)
    for load_lines, fault_rank, load_scores in [("every_test", 2.0, [value, value]),
                                                ("no_test", 1.0, [0.0, 0.0])]:
        s = line_spectrum(result, AREA, load_lines=load_lines)
        scores = score(s, formula)
        assert s.elements.tolist() == [1, 2, 3]
        assert (s.failed[2], s.passed[2]) == (2, 1) and scores[2] == pytest.approx(value)
        assert scores[:2] == pytest.approx(load_scores)
        assert ranks(scores).average[2] == fault_rank


@pytest.mark.parametrize("program, tests, region", [
    ("def f(x):\n    return x +\n", ["assert f(1) == 2", "assert f(2) == 3"], [2]),  # tree-sitter
    ("x = 1\nreturn x\n", ["assert x == 1"], [2]),  # parses, but the compiler names line 2
])
def test_program_that_does_not_load_scores_its_error_region(program, tests, region):
    result = run_tests(program, tests, timeout_s=2)
    assert result.load_outcome == "error"
    s = line_spectrum(result, program)
    assert s.elements.tolist() == region
    assert (s.total_failed, s.total_passed) == (len(tests), 0)
    assert s.failed.tolist() == [len(tests)] * len(region)
    for formula, top in [("tarantula", 1), ("ochiai", 1), ("binary", 1),
                         ("dstar", len(tests) ** 2 + 1)]:
        assert score(s, formula).tolist() == [top] * len(region)


# --- every 0/0 case ------------------------------------------------------------------------------

def test_no_failing_test_scores_zero_everywhere():
    f, p = np.array([0, 0, 0]), np.array([0, 2, 3])  # F = 0: f is 0, covered or not
    for formula in FORMULAS.values():
        assert formula(f, p, 0, 3).tolist() == [0, 0, 0]


def test_no_passing_test():
    f, p = np.array([0, 1, 4]), np.array([0, 0, 0])  # P = 0, F = 4
    assert tarantula(f, p, 4, 0).tolist() == [0, 1, 1]
    assert np.allclose(ochiai(f, p, 4, 0), [0, 0.5, 1])  # sqrt(f / F)
    assert np.allclose(dstar(f, p, 4, 0), [0, 1 / 3, 17])  # f = F, p = 0 -> F^2 + 1
    assert binary(f, p, 4, 0).tolist() == [0, 1, 1]


def test_no_test_at_all():
    for formula in FORMULAS.values():
        assert formula(np.array([0]), np.array([0]), 0, 0).tolist() == [0]


def test_uncovered_element_scores_zero():
    f, p = np.array([0, 1]), np.array([0, 1])
    for formula in FORMULAS.values():
        assert formula(f, p, 2, 3)[0] == 0


def test_dstar_zero_denominator_is_finite_and_ranks_first():
    # f = F = 3, p = 0 (the limit is +inf) against the highest finite score F^* / 1.
    f, p = np.array([3, 3, 2, 0]), np.array([0, 1, 0, 0])
    for star in (1.0, 2.0, 3.5):
        scores = dstar(f, p, 3, 5, star=star)
        assert np.isfinite(scores).all()
        assert scores[0] == 3**star + 1 and scores[1] == 3**star
        assert ranks(scores).worst[0] == 1


@pytest.mark.parametrize("call, match", [
    (lambda: tarantula(np.array([3]), np.array([0]), 2, 1), "0 <= failed <= F"),
    (lambda: ochiai(np.array([0]), np.array([2]), 1, 1), "0 <= passed <= P"),
    (lambda: binary(np.array([0, 1]), np.array([0]), 1, 1), "one shape"),
    (lambda: dstar(np.array([1]), np.array([0]), 1, 1, star=0), "finite and > 0"),
    (lambda: score(Spectrum(np.array([1]), np.array([0]), np.array([0]), 0, 0), "jaccard"),
     "choose one of"),
    (lambda: ranks(np.array([0.5, np.nan])), "without NaN"),
    (lambda: node_scores(np.array([1, 2]), np.array([0.5]), np.array([1])), "one shape"),
])
def test_bad_input_is_rejected_with_a_clear_message(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- properties ------------------------------------------------------------------------------------

@st.composite
def spectra(draw):
    total_failed, total_passed = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    n = draw(st.integers(1, 12))
    f = draw(st.lists(st.integers(0, total_failed), min_size=n, max_size=n))
    p = draw(st.lists(st.integers(0, total_passed), min_size=n, max_size=n))
    return Spectrum(np.arange(1, n + 1), np.array(f), np.array(p), total_failed, total_passed)


@given(spectra())
def test_scores_are_bounded(s):
    for formula in ("tarantula", "ochiai", "binary"):
        scores = score(s, formula)
        assert ((scores >= 0) & (scores <= 1)).all()
    scores = score(s, "dstar")
    assert ((scores >= 0) & (scores <= s.total_failed**2 + 1)).all()


@given(spectra())
def test_element_covered_only_by_failing_tests_is_most_suspicious(s):
    top = s.passed == 0
    for formula in ("tarantula", "binary"):  # any f > 0, p = 0
        scores = score(s, formula)
        assert (scores[top & (s.failed > 0)] >= scores.max()).all()
    for formula in FORMULAS:  # f = F > 0, p = 0: true under every formula (not so for f < F)
        scores = score(s, formula)
        mask = top & (s.failed == s.total_failed) & (s.total_failed > 0)
        assert (scores[mask] >= scores.max()).all()
        assert (ranks(scores).best[mask] == 1).all()


tied_scores = st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 17.0]), min_size=1, max_size=20)


@given(tied_scores)
def test_rank_bounds(values):
    r = ranks(np.array(values))
    assert (1 <= r.best).all() and (r.best <= r.average).all()
    assert (r.average <= r.worst).all() and (r.worst <= len(values)).all()
    assert r.best.min() == 1 and r.worst.max() == len(values)


@given(tied_scores, st.randoms(use_true_random=False))
def test_ranks_are_invariant_to_permuting_elements(values, rng):
    scores = np.array(values)
    perm = np.array(rng.sample(range(len(values)), len(values)))
    before, after = ranks(scores), ranks(scores[perm])
    for a, b in zip(before, after):
        assert (a[perm] == b).all()


@given(spectra(), st.lists(st.integers(-1, 14), max_size=30))
def test_node_scores_equal_scoring_the_node_spectrum(s, lines):
    node_lines = np.array(lines, dtype=np.int64)
    for formula in FORMULAS:
        expected = score(node_spectrum(s, node_lines), formula).astype(np.float32)
        assert (node_scores(s.elements, score(s, formula), node_lines) == expected).all()


def _exact(formula, f, p, F, P):  # noqa: N803 - the paper's names
    """The score as a Fraction (Ochiai: its square), with the documented 0/0 conventions."""
    if formula == "tarantula":
        a, b = Fraction(f, F) if F else Fraction(0), Fraction(p, P) if P else Fraction(0)
        return a / (a + b) if a + b else Fraction(0)
    if formula == "ochiai":
        return Fraction(f * f, F * (f + p)) if F * (f + p) else Fraction(0)
    den = p + F - f
    return Fraction(f * f, den) if den else Fraction(F * F + 1 if F else 0)


@given(spectra())
def test_scores_match_exact_arithmetic_so_ties_are_exact(s):
    for formula in ("tarantula", "ochiai", "dstar"):
        scores = score(s, formula)
        exact = [_exact(formula, int(f), int(p), s.total_failed, s.total_passed)
                 for f, p in zip(s.failed, s.passed)]
        squared = scores**2 if formula == "ochiai" else scores
        assert np.allclose(squared, [float(x) for x in exact], rtol=1e-12, atol=0)
        for i in range(len(exact)):  # equal rationals give bitwise-equal floats
            for j in range(len(exact)):
                if exact[i] == exact[j]:
                    assert scores[i] == scores[j]
