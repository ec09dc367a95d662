"""graphrepair.loop.search: the search baseline on a real MBPP program run in the sandbox, with
hand-made alternatives (so that which candidate passes is known), and Refiner.top_k."""

import numpy as np
import pytest
import torch

from graphrepair.features.encoding import EncodedProgram
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.loop.refine import ProgramState, Refiner
from graphrepair.loop.search import candidates, search

ELIGIBLE = ["identifier", "operator", "keyword", "literal"]


@pytest.fixture(scope="module")
def woodall(mbpp):
    """(refiner, start, leaf_a, leaf_b): is_woodall (mbpp/20) with two corrupted leaves, the one-shot
    wrote ``return True`` on line 3 (wrong: the even inputs of tests 2 and 3 fail, test 1 passes)
    and ``p = 0`` on line 7 (right)."""
    p = mbpp["mbpp/20"]
    graph = ProgramGraph.from_source(p.source)
    vocab = Vocabulary.build([graph])
    enc = EncodedProgram.build(p, graph, vocab, ELIGIBLE)
    lines = enc.node_lines(enc.orig_texts)[enc.leaf_nodes]
    texts = np.array(enc.orig_texts)
    a = int(np.flatnonzero((lines == 3) & (texts == "False"))[0])
    b = int(np.flatnonzero((lines == 7) & (texts == "0"))[0])
    masked = np.zeros(len(texts), bool)
    masked[[a, b]] = True
    start = ProgramState.start(enc, masked, vocab)
    start.texts[a], start.texts[b] = "True", "0"
    refiner = Refiner(torch.nn.Identity(), vocab, timeout_s=5.0)
    refiner.run_tests([start])
    assert start.runs == 1 and [t.outcome for t in start.result.tests] == ["passed", "failed", "failed"]
    return refiner, start, a, b


def _options(refiner, start, alternatives):
    """ids ``[L, 3]``, probs ``[L, 3]`` with ``alternatives = {leaf: [(text, p), ...]}``."""
    n = len(start.texts)
    ids, probs = np.zeros((n, 3), np.int64), np.zeros((n, 3), np.float32)
    for leaf, alts in alternatives.items():
        for j, (text, p) in enumerate(alts):
            ids[leaf, j], probs[leaf, j] = refiner.vocab.leaf_id(text), p
    return ids, probs


def test_candidates_try_the_most_suspicious_leaf_first_then_the_likeliest_text(woodall):
    refiner, start, a, b = woodall
    ids, probs = _options(refiner, start, {a: [("True", 0.5), ("x", 0.3), ("False", 0.2)],
                                            b: [("0", 0.6), ("1", 0.3), ("2", 0.1)]})
    got = [(t[a], t[b]) for t in candidates(start, refiner, ids, probs)]
    # line 3 is run by the two failing tests only (Tarantula 1), line 7 by the passing one (0)
    assert got == [("x", "0"), ("False", "0"), ("True", "1"), ("True", "2")]


def test_the_first_candidate_passing_more_tests_is_kept_within_the_budget(woodall):
    refiner, start, a, b = woodall
    options = _options(refiner, start, {a: [("True", 0.5), ("x", 0.3), ("False", 0.2)],
                                        b: [("0", 0.6), ("1", 0.3)]})
    rows, used = search(refiner, [start], [options], [[1, 2, 4]])
    # budget 2: one candidate ("return x", still one test passing: not kept); budget 4: the second
    # candidate restores "False" and passes every test, so the search stops after 3 executions
    assert used == [3]
    assert [r[0].texts[a] for r in rows] == ["True", "True", "False"]
    assert [r[0].result.n_passed for r in rows] == [1, 1, 3] and rows[-1][0].passed
    assert start.texts[a] == "True" and start.runs == 1  # the start is not modified


def test_the_budget_is_never_exceeded_and_no_row_gets_worse(woodall):
    refiner, start, a, b = woodall
    options = _options(refiner, start, {a: [("True", 0.5), ("x", 0.3)], b: [("0", 0.5), ("1", 0.3), ("2", 0.2)]})
    for budgets in ([1, 1, 1], [1, 2, 3], [1, 3, 9]):
        rows, used = search(refiner, [start, start], [options, options], [budgets, budgets])
        # candidates: x at line 3, then 1 and 2 at line 7; none passes more than the one test
        assert used == [min(budgets[-1], 1 + 3)] * 2
        assert all(r[i].texts == start.texts and r[i].result.n_passed == 1 for r in rows for i in (0, 1))


def test_candidates_equal_to_a_program_already_run_cost_nothing(woodall):
    refiner, start, a, b = woodall
    # every alternative is the current text: no candidate at all
    options = _options(refiner, start, {a: [("True", 0.9)], b: [("0", 0.9)]})
    rows, used = search(refiner, [start], [options], [[1, 5]])
    assert used == [1] and rows[-1][0].texts == start.texts


def test_bad_budgets_are_refused(woodall):
    refiner, start, a, b = woodall
    options = _options(refiner, start, {a: [("x", 0.5)]})
    with pytest.raises(ValueError, match="non-decreasing"):
        search(refiner, [start], [options], [[2, 1]])
    with pytest.raises(ValueError, match="non-decreasing and start at >= the 1 executions"):
        search(refiner, [start], [options], [[0, 3]])
    with pytest.raises(ValueError, match="1 programs but 2 option sets"):
        search(refiner, [start], [options, options], [[1, 2]])


class Ramp(torch.nn.Module):
    """Logit = token id: the larger the id, the likelier."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, data):
        return torch.arange(self.vocab_size, dtype=torch.float32).repeat(int(data.leaf_mask.sum()), 1)


def test_top_k_gives_leaf_texts_by_decreasing_probability(woodall):
    refiner, start, _, _ = woodall
    vocab = refiner.vocab
    model = Refiner(Ramp(len(vocab)), vocab)
    [(ids, probs)] = model.top_k([ProgramState.start(start.enc, start.masked, vocab)], False, 3)
    n = len(start.texts)
    assert ids.shape == probs.shape == (n, 3)
    assert (ids == np.arange(len(vocab) - 1, len(vocab) - 4, -1)).all()  # the three largest ids
    assert vocab.leaf_token_mask()[ids].all() and (np.diff(probs, axis=1) < 0).all()
    with pytest.raises(ValueError, match="k must lie in"):
        model.top_k([start], False, 0)
