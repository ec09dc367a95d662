"""graphrepair.features.encoding / graphrepair.features.variants: both node-feature variants on real MBPP programs."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from graphrepair.features.encoding import (
    NUM_EDGE_TYPES,
    EncodedProgram,
    Feedback,
    RefinementData,
    feedback_from_result,
    make_data,
    new_data,
)
from graphrepair.features.variants import (
    SIX_FEATURE_COLUMNS,
    FeatureVariant,
    make_signal_data,
    make_variant_data,
)
from graphrepair.feedback.failures import EXCEPTION_TYPES, VALUE_TYPES
from graphrepair.graphs.graph import EdgeType, ProgramGraph
from graphrepair.graphs.vocab import PAD, UNK, Vocabulary
from harness.sandbox import OUTCOMES, run_tests

ELIGIBLE = ["identifier", "operator", "keyword", "literal"]
TASKS = (2, 3, 4, 17, 57)


@pytest.fixture(scope="module")
def encoded(mbpp):
    probs = [mbpp[f"mbpp/{i}"] for i in TASKS]
    graphs = [ProgramGraph.from_source(p.source) for p in probs]
    vocab = Vocabulary.build(graphs[:-1])  # the last program has texts the vocabulary lacks
    return vocab, [EncodedProgram.build(p, g, vocab, ELIGIBLE) for p, g in zip(probs, graphs)]


def test_num_edge_types_matches_schema():
    assert NUM_EDGE_TYPES == len(EdgeType) == 5


def test_encoded_program_arrays(encoded):
    vocab, encs = encoded
    for enc in encs:
        g = enc.graph
        # First leaf of each node, as the original walk-up loop computed it.
        expected = np.full(g.num_nodes, -1)
        for pos, node in enumerate(g.leaf_nodes):
            while node >= 0 and expected[node] < 0:
                expected[node] = pos
                node = g.parent[node]
        assert np.array_equal(enc.first_leaf, expected) and (expected >= 0).all()
        assert enc.parent_type[0] == PAD
        assert [int(t) for t in enc.parent_type[1:]] == [
            vocab.type_id(g.node_types[p]) for p in g.parent[1:]
        ]
        assert enc.leaf_mask.sum() == g.num_leaves and enc.leaf_mask[enc.leaf_nodes].all()
        assert np.array_equal(enc.target, np.where(enc.orig_ids == UNK, -100, enc.orig_ids))
        assert enc.num_unknown == int((enc.orig_ids == UNK).sum())
        assert np.array_equal(enc.gap_newlines, [s.count("\n") for s in g.gaps])
    assert encs[-1].num_unknown > 0 and all(e.num_unknown == 0 for e in encs[:-1])
    with pytest.raises(ValueError, match="unknown leaf categories"):
        EncodedProgram.build(encs[0].problem, encs[0].graph, vocab, ["identifer"])


def test_five_feature_variant(encoded):
    _, encs = encoded
    enc = encs[0]
    cur = enc.orig_ids.copy()
    cur[::3] = 1  # MASK
    data = make_data(enc, cur, enc.orig_ids, 2, Feedback.empty())
    assert isinstance(data, RefinementData)
    data.validate(raise_on_error=True)
    # The same x as the original np.stack construction.
    tok, prev = enc.type_ids.copy(), enc.type_ids.copy()
    tok[enc.leaf_nodes], prev[enc.leaf_nodes] = cur, enc.orig_ids
    n = enc.num_nodes
    expected = np.stack([tok, prev, enc.depth, enc.sibling, np.full(n, 2)], axis=1)
    assert data.x.dtype == torch.long and torch.equal(data.x, torch.from_numpy(expected))
    assert torch.equal(data.edge_type, enc.edge_type) and data.edge_type.max() < NUM_EDGE_TYPES
    assert data.num_nodes == n and data.y.shape == (enc.graph.num_leaves,)


def test_six_feature_variant(encoded):
    vocab, encs = encoded
    enc = encs[1]
    n = enc.num_nodes
    signal = np.linspace(0, 1, n, dtype=np.float32)
    data = make_signal_data(enc, enc.orig_ids, enc.orig_ids, 3, signal)
    data.validate(raise_on_error=True)
    assert SIX_FEATURE_COLUMNS == ("token_id", "prev_token_id", "parent_type", "depth", "iteration")
    assert data.x.shape == (n, 5) and data.x.dtype == torch.long
    assert torch.equal(data.x[:, 0], torch.from_numpy(enc.type_ids))
    assert torch.equal(data.x[:, 2], torch.from_numpy(enc.parent_type))
    assert data.x[0, 2] == PAD and data.x[1, 2] == vocab.type_id("module")
    assert torch.equal(data.x[:, 3], torch.from_numpy(enc.depth)) and (data.x[:, 4] == 3).all()
    assert data.test_signal.dtype == torch.float32 and torch.equal(data.test_signal, torch.from_numpy(signal))
    assert torch.equal(data.edge_type, enc.edge_type)
    zero = make_signal_data(enc, enc.orig_ids, enc.orig_ids, 0)
    assert zero.test_signal.shape == (n,) and not zero.test_signal.any()
    with pytest.raises(ValueError, match=rf"shape \({n},\)"):
        make_signal_data(enc, enc.orig_ids, enc.orig_ids, 0, signal[:-1])
    with pytest.raises(ValueError, match="NaN"):
        make_signal_data(enc, enc.orig_ids, enc.orig_ids, 0, np.full(n, np.nan))
    # Batching concatenates the per-node signal and offsets the edges.
    batch = Batch.from_data_list([data, make_signal_data(encs[0], encs[0].orig_ids, encs[0].orig_ids, 0)])
    assert batch.test_signal.shape == (n + encs[0].num_nodes,)
    assert batch.edge_index.max() == n + encs[0].num_nodes - 1


def test_variant_selection(encoded):
    _, encs = encoded
    enc = encs[2]
    assert FeatureVariant("five") is FeatureVariant.FIVE and FeatureVariant("six") is FeatureVariant.SIX
    five = make_variant_data("five", enc, enc.orig_ids, enc.orig_ids, 0)
    six = make_variant_data(FeatureVariant.SIX, enc, enc.orig_ids, enc.orig_ids, 0)
    assert isinstance(five, RefinementData) and "test_outcome" in five and "test_signal" not in five
    assert "test_signal" in six and "test_outcome" not in six
    with pytest.raises(ValueError, match="not a valid FeatureVariant"):
        make_variant_data("seven", enc, enc.orig_ids, enc.orig_ids, 0)
    with pytest.raises(ValueError, match="per-node test_signal"):
        make_variant_data("six", enc, enc.orig_ids, enc.orig_ids, 0, feedback=Feedback.empty())
    with pytest.raises(ValueError, match="per-test feedback"):
        make_variant_data("five", enc, enc.orig_ids, enc.orig_ids, 0, test_signal=np.zeros(enc.num_nodes))


def test_new_data_equals_constructor(encoded):
    _, encs = encoded
    enc = encs[3]
    nodes = np.arange(0, enc.num_nodes, 2)
    fb = Feedback(np.array([0, 1]), np.stack([np.zeros_like(nodes), nodes]), False)
    attrs = dict(
        x=torch.zeros(enc.num_nodes, 5, dtype=torch.long),
        edge_index=enc.edge_index,
        edge_type=enc.edge_type,
        test_outcome=torch.from_numpy(fb.outcome),
        test_position=torch.arange(2),
        trace_index=torch.from_numpy(fb.trace_index),
        num_nodes=enc.num_nodes,
    )
    for cls in (Data, RefinementData):
        fast, slow = new_data(cls, **attrs), cls(**attrs)
        assert type(fast) is cls and sorted(fast.keys()) == sorted(slow.keys())
        assert fast.num_nodes == slow.num_nodes == enc.num_nodes
        for key in slow.keys():
            assert torch.equal(torch.as_tensor(fast[key]), torch.as_tensor(slow[key])), key
    a, b = new_data(RefinementData, **attrs), RefinementData(**attrs)
    ba, bb = Batch.from_data_list([a, a]), Batch.from_data_list([b, b])
    assert torch.equal(ba.trace_index, bb.trace_index) and torch.equal(ba.edge_index, bb.edge_index)


def test_feedback_records_say_what_failed(mbpp):
    """A real MBPP program run in the sandbox: the exception, its line's nodes, expected types."""
    p = mbpp["mbpp/17"]  # def square_perimeter(a): / perimeter=4*a / return perimeter
    g = ProgramGraph.from_source(p.source)
    enc = EncodedProgram.build(p, g, Vocabulary.build([g]), ELIGIBLE)
    texts = list(enc.orig_texts)
    texts[len(texts) - 1 - texts[::-1].index("perimeter")] = "perimetr"  # line 3: NameError
    result = run_tests(enc.source(texts), p.tests, p.setup, timeout_s=5)
    fb = feedback_from_result(enc, texts, result, max_tests=2)
    lines = enc.node_lines(texts)
    assert fb.exception.tolist() == [EXCEPTION_TYPES.index("NameError")] * 2
    assert [f.line for f in fb.failures] == [3, 3]
    assert set(fb.raise_index[0].tolist()) == {0, 1}
    assert set(lines[fb.raise_index[1]].tolist()) == {3}
    assert len(fb.raise_index[1]) == 2 * (lines == 3).sum()  # every node on line 3, per test
    assert (fb.actual_type == 0).all() and (fb.expected_type == 0).all()  # raised in the program
    # a wrong value instead: the AssertionError is raised in the test, which names the expected int
    texts = ["3" if t == "4" else t for t in enc.orig_texts]
    result = run_tests(enc.source(texts), p.tests, p.setup, timeout_s=5)
    fb = feedback_from_result(enc, texts, result, max_tests=100)
    assert fb.exception.tolist() == [EXCEPTION_TYPES.index("AssertionError")] * 3
    assert fb.raise_index.shape == (2, 0) and [f.expected for f in fb.failures] == ["40", "20", "16"]
    assert fb.expected_type.tolist() == [VALUE_TYPES.index("int")] * 3
    # load-only lines (the def line, 1) are in every trace, or in none
    every = feedback_from_result(enc, texts, result, 100, load_lines="every_test")
    none = feedback_from_result(enc, texts, result, 100, load_lines="no_test")
    assert set(lines[every.trace_index[1]].tolist()) == {1, 2, 3}
    assert set(lines[none.trace_index[1]].tolist()) == {2, 3}
    with pytest.raises(ValueError, match="unknown load_lines"):
        feedback_from_result(enc, texts, result, 100, load_lines="all")
    # the records reach the model input, and raise_index is offset per graph when batched
    data = make_data(enc, enc.orig_ids, enc.orig_ids, 1, _with_raise(fb, lines))
    assert data.test_exception.tolist() == fb.exception.tolist()
    assert data.test_expected_type.tolist() == fb.expected_type.tolist()
    batch = Batch.from_data_list([data, data], follow_batch=["test_outcome"])
    r = data.raise_index.shape[1]
    assert torch.equal(batch.raise_index[:, r:], data.raise_index + torch.tensor([[3], [enc.num_nodes]]))
    empty = make_data(enc, enc.orig_ids, enc.orig_ids, 0, Feedback.empty())
    assert empty.raise_index.shape == (2, 0) and empty.test_exception.shape == (0,)


def _with_raise(fb, lines):
    """``fb`` with every test raising on line 2 (to see the pairs batched)."""
    nodes = np.flatnonzero(lines == 2)
    pairs = np.concatenate([np.stack([np.full_like(nodes, t), nodes]) for t in range(len(fb.outcome))], 1)
    return Feedback(fb.outcome, fb.trace_index, fb.all_passed, fb.exception, fb.actual_type,
                    fb.expected_type, pairs, fb.failures)


def test_select_keeps_failing_records_first_with_their_positions(mbpp):
    """mbpp/17 with `return perimeter` -> `return a`: its 3 tests fail, two added ones pass;
    4 records keep the 3 failing tests and the first passing one, each with its test index,
    coverage pairs and failure."""
    p = mbpp["mbpp/17"]
    g = ProgramGraph.from_source(p.source)
    enc = EncodedProgram.build(p, g, Vocabulary.build([g]), ELIGIBLE)
    texts = list(enc.orig_texts)
    tests = (p.tests[0], "assert square_perimeter(0) == 0", p.tests[1], "assert 1 == 1", p.tests[2])
    texts[len(texts) - 1 - texts[::-1].index("perimeter")] = "a"
    result = run_tests(enc.source(texts), tests, p.setup, timeout_s=5)
    full = feedback_from_result(enc, texts, result, max_tests=100)
    passed = full.outcome == OUTCOMES.index("passed")
    assert passed.tolist() == [False, True, False, True, False]
    kept = feedback_from_result(enc, texts, result, max_tests=100, max_records=4)
    assert kept.position.tolist() == [0, 1, 2, 4]  # 3 failing + the first passing, in test order
    assert kept.outcome.tolist() == full.outcome[[0, 1, 2, 4]].tolist()
    assert [f.expected for f in kept.failures] == [full.failures[i].expected for i in (0, 1, 2, 4)]
    for new, old in enumerate((0, 1, 2, 4)):  # each record keeps its own coverage
        assert set(kept.trace_index[1][kept.trace_index[0] == new].tolist()) == set(
            full.trace_index[1][full.trace_index[0] == old].tolist())
    assert full.select(0) is full and full.select(5) is full
    data = make_data(enc, enc.orig_ids, enc.orig_ids, 1, kept)
    assert data.test_position.tolist() == [0, 1, 2, 4]
    with pytest.raises(ValueError, match="max_records"):
        full.select(-1)
