"""graphrepair.feedback.informativeness on a real program run in the sandbox: tests that disagree
localize the faulty line, tests that all fail tie every executed line."""

import numpy as np
import pytest

from graphrepair.data.problems import Problem
from graphrepair.features.encoding import EncodedProgram
from graphrepair.feedback.informativeness import feedback_informativeness
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.loop.refine import ProgramState
from harness.sandbox import run_tests

SOURCE = "def f(x):\n    y = x + 1\n    if x > 5:\n        return y * 2\n    return y\n"
PROBLEM = Problem("t/1", SOURCE, ("assert f(1) == 2", "assert f(10) == 22", "assert f(2) == 3"))


def _state(line: int, old: str, new: str | None) -> ProgramState:
    """The program with the leaf ``old`` on ``line`` corrupted and then predicted as ``new``."""
    graph = ProgramGraph.from_source(SOURCE)
    vocab = Vocabulary.build([graph])
    enc = EncodedProgram.build(PROBLEM, graph, vocab, ["identifier", "operator", "keyword", "literal"])
    lines = enc.node_lines(list(enc.orig_texts))[enc.leaf_nodes]
    leaf = int(np.flatnonzero((lines == line) & (np.array(enc.orig_texts) == old))[0])
    masked = np.zeros(len(enc.orig_texts), bool)
    masked[leaf] = True
    s = ProgramState.start(enc, masked, vocab)
    s.texts[leaf] = new if new is not None else old
    s.result = run_tests(s.source(), PROBLEM.tests, timeout_s=5.0)
    return s


def test_disagreeing_tests_rank_the_faulty_line_first():
    s = _state(4, "2", "3")  # only f(10) runs line 4: it alone fails
    out = feedback_informativeness([s])
    assert [t.outcome for t in s.result.tests] == ["passed", "failed", "passed"]
    assert out["loads"] == out["some_pass"] == out["mixed"] == 1.0
    assert out["localizable"] == 1 and out["faulty_rank"] == 1.0 and out["faulty_top1"] == 1.0


def test_tests_that_all_fail_tie_every_executed_line():
    s = _state(2, "1", "2")  # every test runs line 2 and fails
    out = feedback_informativeness([s])
    assert out["some_pass"] == out["mixed"] == 0.0
    # executed: def (while loading only, so covered by no test: score 0), and lines 2, 3, 4, 5,
    # covered by failing tests only: those four tie first
    n = out["executed_lines"]
    assert n == 5 and out["faulty_rank"] == pytest.approx((1 + 4) / 2)
    assert out["faulty_top1"] == pytest.approx(1 / 4)
    # when loading counts for every test, the def line joins the tie
    old = feedback_informativeness([s], load_lines="every_test")
    assert old["faulty_rank"] == pytest.approx((1 + n) / 2)
    assert old["faulty_top1"] == pytest.approx(1 / n)


def test_a_repaired_program_is_not_localizable_and_the_shares_pool():
    good, bad = _state(4, "2", None), _state(4, "2", "3")
    out = feedback_informativeness([good, bad])
    assert out["programs"] == 2 and out["localizable"] == 1 and out["some_pass"] == 1.0
    assert out["mixed"] == 0.5
    empty = feedback_informativeness([])
    assert empty["loads"] is None and empty["faulty_rank"] is None
    s = ProgramState.start(good.enc, good.masked, Vocabulary.build([good.enc.graph]))
    with pytest.raises(ValueError, match="no test result"):
        feedback_informativeness([s])
