"""graphrepair.feedback.shuffle: the feedback-shuffled baseline's derangement and line mapping, on
real MBPP programs run in the sandbox (one that loads and fails some tests, one that fails all,
one that does not load, one that passes)."""

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import graphrepair.loop.refine as refine_module
from graphrepair.features.encoding import EncodedProgram, feedback_from_result
from graphrepair.feedback.shuffle import (
    derangement,
    feedback_donors,
    line_count,
    map_lines,
    shuffle_feedback,
    transplant_result,
)
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.loop.refine import ProgramState, Refiner, refine, signal_from_result

ELIGIBLE = ["identifier", "operator", "keyword", "literal"]
# task id -> (line, reference text, text written there; None = left masked)
EDITS = {
    "mbpp/20": (3, "False", "True"),  # is_woodall: the even inputs (tests 2, 3) now fail
    "mbpp/17": (2, "*", "+"),  # square_perimeter: every test fails
    "mbpp/11": (6, "range", None),  # remove_Occ: a mask left in, the program does not load
    "mbpp/12": None,  # sort_matrix as written: passes
}


@pytest.fixture(scope="module")
def batch(mbpp):
    """(vocabulary, states with their sandbox results) of the four programs of EDITS."""
    graphs = {t: ProgramGraph.from_source(mbpp[t].source) for t in EDITS}
    vocab = Vocabulary.build(list(graphs.values()))
    states = []
    for task, edit in EDITS.items():
        enc = EncodedProgram.build(mbpp[task], graphs[task], vocab, ELIGIBLE)
        masked = np.zeros(len(enc.orig_texts), bool)
        if edit is not None:
            line, old, _ = edit
            lines = enc.node_lines(enc.orig_texts)[enc.leaf_nodes]
            masked[np.flatnonzero((lines == line) & (np.array(enc.orig_texts) == old))[0]] = True
        s = ProgramState.start(enc, masked, vocab)
        if edit is not None and edit[2] is not None:
            s.texts[int(np.flatnonzero(masked)[0])] = edit[2]
        states.append(s)
    Refiner(torch.nn.Identity(), vocab, timeout_s=5.0).run_tests(states)
    outcomes = [[t.outcome for t in s.result.tests] for s in states]
    assert outcomes[0] == ["passed", "failed", "failed"] and outcomes[1] == ["failed"] * 3
    assert states[2].result.load_outcome == "error" and states[3].passed
    return vocab, states


def _same_feedback(a, b):
    return (np.array_equal(a.outcome, b.outcome) and np.array_equal(a.trace_index, b.trace_index)
            and a.all_passed == b.all_passed)


def test_a_result_laid_onto_its_own_program_is_its_own_feedback(batch):
    """The line mapping between equal lengths is the identity, and a program that does not load
    keeps its parse-error region: both feature variants read exactly what the program's own result
    gives them."""
    _, states = batch
    for s in states:
        src, texts = s.source(), s.texts
        moved = transplant_result(s.result, src, line_count(src))
        assert moved.load_outcome == "passed"
        assert _same_feedback(feedback_from_result(s.enc, texts, moved, 100),
                              feedback_from_result(s.enc, texts, s.result, 100)), s.enc.problem.task_id
        for formula in ("binary", "tarantula"):
            assert np.array_equal(signal_from_result(s.enc, texts, moved, formula),
                                  signal_from_result(s.enc, texts, s.result, formula))


@pytest.mark.parametrize("variant", ["five", "six"])
def test_each_program_reads_another_programs_result_reproducibly(batch, variant):
    vocab, states = batch
    refiner = Refiner(torch.nn.Identity(), vocab, variant=variant, signal="tarantula")
    results = [s.result for s in states]
    own = []
    for s in states:
        refiner.give_feedback(s, s.result)
        own.append((s.feedback, s.signal))

    def read(seed):
        donors = shuffle_feedback(refiner, states, states, np.random.default_rng(seed))
        return donors, [(s.feedback, s.signal) for s in states]

    donors, got = read(7)
    assert (donors != np.arange(4)).all() and sorted(donors.tolist()) == [0, 1, 2, 3]
    assert [s.result for s in states] == results  # outcomes, freezing, metrics: still their own
    differs = 0
    for i, d in enumerate(donors.tolist()):
        moved = transplant_result(states[d].result, states[d].source(), line_count(states[i].source()))
        if variant == "five":
            assert _same_feedback(got[i][0], feedback_from_result(states[i].enc, states[i].texts, moved, 100))
            assert len(got[i][0].outcome) == len(states[d].result.tests)
            differs += not _same_feedback(got[i][0], own[i][0])
        else:
            expected = signal_from_result(states[i].enc, states[i].texts, moved, "tarantula")
            assert np.array_equal(got[i][1], expected) and got[i][1].shape == (states[i].enc.num_nodes,)
            differs += not np.array_equal(got[i][1], own[i][1])
    assert differs >= 2  # not vacuous: the feedback read is not the program's own
    again_donors, again = read(7)
    assert np.array_equal(again_donors, donors)
    for (fb, sig), (fb2, sig2) in zip(got, again):
        assert _same_feedback(fb, fb2) and (sig is None) == (sig2 is None)
        assert sig is None or np.array_equal(sig, sig2)


def test_only_active_programs_are_given_other_feedback(batch):
    vocab, states = batch
    refiner = Refiner(torch.nn.Identity(), vocab)
    for s in states:
        refiner.give_feedback(s, s.result)
    before = [s.feedback for s in states]
    [donor] = shuffle_feedback(refiner, states, [states[1]], np.random.default_rng(0))
    assert donor in (0, 2, 3) and all(states[i].feedback is before[i] for i in (0, 2, 3))
    alone = shuffle_feedback(refiner, states[:1], states[:1], np.random.default_rng(0))
    assert alone.tolist() == [-1]
    assert len(states[0].feedback.outcome) == 0  # a batch of one: no other program, no feedback
    with pytest.raises(ValueError, match="belong to the batch"):
        shuffle_feedback(refiner, states[:2], states[2:], np.random.default_rng(0))


class Constant(torch.nn.Module):
    """Predicts one token everywhere with a small margin: masks get filled, nothing changes later."""

    def __init__(self, vocab_size: int, token: int) -> None:
        super().__init__()
        self.vocab_size, self.token = vocab_size, token

    def forward(self, data):
        logits = torch.zeros(int(data.leaf_mask.sum()), self.vocab_size)
        logits[:, self.token] = 1.0
        return logits


@pytest.mark.parametrize("feedback_at_iteration0", [False, True])
def test_refine_shuffles_whenever_feedback_is_given(batch, monkeypatch, feedback_at_iteration0):
    vocab, states = batch
    calls = []
    real = refine_module.shuffle_feedback

    def spy(refiner, group, active, rng):
        donors = real(refiner, group, active, rng)
        calls.append((group[0].iteration, [group.index(s) for s in active], donors.tolist()))
        return donors

    monkeypatch.setattr(refine_module, "shuffle_feedback", spy)

    def run(seed):
        calls.clear()
        group = [ProgramState.start(s.enc, s.masked, vocab) for s in states]
        refiner = Refiner(Constant(len(vocab), vocab.leaf_id("True")), vocab, min_confidence=0.9)
        refine(refiner, group, 3, shuffle_seed=seed, feedback_at_iteration0=feedback_at_iteration0)
        again = [dataclasses.replace(s, result=None) for s in group]
        refiner.run_tests(again)  # served from the cache by each program's own source
        assert [s.result for s in group] == [s.result for s in again]
        return list(calls), group

    first, group = run(11)
    # sort_matrix passes at iteration 0 and is frozen; the other three are refined throughout
    assert [s.passed for s in group] == [False, False, False, True]
    expected = [(1, [0, 1, 2]), (2, [0, 1, 2])]
    assert [(k, active) for k, active, _ in first] == ([(0, [0, 1, 2, 3])] if feedback_at_iteration0
                                                       else []) + expected
    for _, active, donors in first:
        assert all(d != a for a, d in zip(active, donors)) and sorted(donors) == active
    assert run(11)[0] == first  # the same seed: the same donors at every iteration


def test_map_lines_by_hand():
    assert map_lines([1, 2, 3], 3, 3).tolist() == [1, 2, 3]
    assert map_lines([2], 4, 8).tolist() == [3, 4]  # [1/4, 2/4) covers lines 3 and 4 of 8
    assert map_lines([3, 4], 8, 4).tolist() == [2]
    assert map_lines([3], 3, 2).tolist() == [2]  # [2/3, 1) overlaps [1/2, 1) only
    assert map_lines([2], 3, 2).tolist() == [1, 2]  # [1/3, 2/3) straddles the middle
    assert map_lines([0, 9], 3, 3).tolist() == [1, 3]  # clipped into the program
    assert map_lines([], 3, 5).tolist() == []
    with pytest.raises(ValueError, match="line counts must be >= 1"):
        map_lines([1], 0, 3)


@given(st.lists(st.integers(1, 40), max_size=10), st.integers(1, 40), st.integers(1, 40))
def test_map_lines_is_the_overlap_of_relative_intervals(lines, n_from, n_to):
    lines = [min(x, n_from) for x in lines]
    got = map_lines(lines, n_from, n_to).tolist()
    want = [m for m in range(1, n_to + 1)
            if any(Fraction(m - 1, n_to) < Fraction(x, n_from) and Fraction(x - 1, n_from) < Fraction(m, n_to)
                   for x in lines)]
    assert got == want
    assert bool(got) == bool(lines)


@given(st.integers(2, 60), st.integers(0, 2**32 - 1))
def test_a_derangement_moves_everything_and_is_reproducible(n, seed):
    p = derangement(n, np.random.default_rng(seed))
    assert sorted(p.tolist()) == list(range(n)) and (p != np.arange(n)).all()
    assert np.array_equal(p, derangement(n, np.random.default_rng(seed)))


@given(st.integers(1, 30), st.data())
def test_donors_are_never_the_receiver(n, data):
    active = data.draw(st.lists(st.integers(0, n - 1), unique=True))
    seed = data.draw(st.integers(0, 2**32 - 1))
    donors = feedback_donors(active, n, np.random.default_rng(seed))
    assert len(donors) == len(active)
    assert all(d != a for a, d in zip(active, donors.tolist()))
    if n == 1:
        assert donors.tolist() == [-1] * len(active)
    else:
        assert ((donors >= 0) & (donors < n)).all()
    if len(active) >= 2:
        assert sorted(donors.tolist()) == sorted(active)
    assert np.array_equal(donors, feedback_donors(active, n, np.random.default_rng(seed)))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="at least 2 elements"):
        derangement(1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="distinct indices in"):
        feedback_donors([0, 0], 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="distinct indices in"):
        feedback_donors([3], 3, np.random.default_rng(0))


def test_the_lines_a_donor_message_names_are_mapped_like_its_coverage():
    from graphrepair.feedback.shuffle import map_lines, transplant_result
    from harness.results import ProgramResult, TestResult

    msg = 'Traceback:\n  File "program.py", line 4, in f\nNameError: name \'x\' is not defined'
    donor = ProgramResult(tests=(TestResult("t", "error", msg, 0.1, (1, 4)),), load_outcome="passed",
                          load_message="", load_covered_lines=(1,), stdout_tail="", stderr_tail="")
    moved = transplant_result(donor, "a\nb\nc\nd\n", 8)
    line = int(map_lines([4], 4, 8)[0])
    assert f'"program.py", line {line}, in f' in moved.tests[0].message and line == 7
    assert moved.tests[0].covered_lines == tuple(map_lines([1, 4], 4, 8).tolist())
