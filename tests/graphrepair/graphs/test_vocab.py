"""Tests for graphrepair.graphs.vocab: building on a real training split, encoding, UNK, serialisation."""

import json
import logging

import numpy as np
import pytest

from graphrepair.data.problems import load_mbpp, split_problems
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import MASK, PAD, SPECIAL_TOKENS, UNK, Vocabulary
from tests.graphrepair.conftest import data_dir


@pytest.fixture(scope="module")
def mbpp_graphs():
    split = split_problems(load_mbpp(data_dir()), seed=0)
    return {k: [ProgramGraph.from_source(p.source) for p in v] for k, v in split.items()}


def test_layout_and_lookup():
    g = ProgramGraph.from_source("x = x + 1\ny = 'a'\n")
    vocab = Vocabulary.build([g])
    assert (PAD, MASK, UNK) == (0, 1, 2)
    assert [vocab.text(i) for i in range(3)] == list(SPECIAL_TOKENS)
    # By count desc, then text: assignment and expression_statement twice, the rest once;
    # "=" and "x" twice, then the single texts in code-point order.
    assert vocab.node_types == ["assignment", "expression_statement", "binary_operator", "module"]
    assert vocab.leaf_texts == ["=", "x", "'a'", "+", "1", "y"]
    assert len(vocab) == 3 + 4 + 6
    assert vocab.text(vocab.type_id("assignment")) == "<type:assignment>"
    assert vocab.text(vocab.leaf_id("x")) == "x"
    assert vocab.leaf_id("assignment") == UNK and vocab.type_id("x") == UNK
    assert vocab.leaf_id("<unk>") == UNK and vocab.type_id("identifier") == UNK  # leaf-only type
    mask = vocab.leaf_token_mask()
    assert mask.dtype == bool and mask.shape == (len(vocab),)
    assert mask.tolist() == [False] * 7 + [True] * 6
    with pytest.raises(IndexError):
        vocab.text(len(vocab))


def test_encode_graph_and_unk():
    vocab = Vocabulary.build([ProgramGraph.from_source("x = 1\n")])
    g = ProgramGraph.from_source("x = 2\n")
    ids, num_unk = vocab.encode_graph(g)
    assert ids.dtype == np.int64 and ids.shape == (g.num_nodes,)
    assert num_unk == 1
    assert [vocab.text(int(i)) for i in ids] == [
        "<type:module>",
        "<type:expression_statement>",
        "<type:assignment>",
        "x",
        "=",
        "<unk>",
    ]
    assert vocab.oov_rate([g]) == pytest.approx(1 / 3)
    assert vocab.oov_rate([]) == 0.0


def test_min_freq_and_max_size(mbpp_graphs):
    train = mbpp_graphs["train"]
    full = Vocabulary.build(train)
    frequent = Vocabulary.build(train, min_freq=3)
    assert len(frequent.leaf_texts) < len(full.leaf_texts)
    assert frequent.leaf_texts == full.leaf_texts[: len(frequent.leaf_texts)]
    assert frequent.node_types == full.node_types
    capped = Vocabulary.build(train, max_size=len(full.node_types) + 3 + 10)
    assert len(capped) == len(full.node_types) + 13 and capped.leaf_texts == full.leaf_texts[:10]
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary.build(train, max_size=5)
    with pytest.raises(ValueError, match="min_freq"):
        Vocabulary.build(train, min_freq=0)


def test_build_is_deterministic_and_oov_on_held_out(mbpp_graphs):
    train = mbpp_graphs["train"]
    vocab = Vocabulary.build(train, min_freq=2)
    assert vocab == Vocabulary.build(list(reversed(train)), min_freq=2)
    assert vocab.oov_rate(train) < vocab.oov_rate(mbpp_graphs["test"]) < 0.2
    total = sum(g.num_leaves for g in mbpp_graphs["test"])
    unk = sum(vocab.encode_graph(g)[1] for g in mbpp_graphs["test"])
    assert vocab.oov_rate(mbpp_graphs["test"]) == pytest.approx(unk / total)


def test_to_dict_round_trip(mbpp_graphs):
    vocab = Vocabulary.build(mbpp_graphs["train"], min_freq=2)
    restored = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab and len(restored) == len(vocab)
    assert [restored.text(i) for i in range(len(vocab))] == [
        vocab.text(i) for i in range(len(vocab))
    ]
    g = mbpp_graphs["val"][0]
    assert np.array_equal(restored.encode_graph(g)[0], vocab.encode_graph(g)[0])
    bad = {**vocab.to_dict(), "version": 99}
    with pytest.raises(ValueError, match="version"):
        Vocabulary.from_dict(bad)
    assert "Vocabulary(size=" in repr(vocab)


def test_unknown_texts_are_counted_and_logged(mbpp_graphs, caplog):
    vocab = Vocabulary.build(mbpp_graphs["train"], min_freq=2)
    test = mbpp_graphs["test"]
    size = len(vocab)
    with caplog.at_level(logging.INFO, logger="graphrepair.graphs.vocab"):
        ids, report = vocab.apply(test, label="test split")
    assert len(ids) == len(test) and all(np.array_equal(i, vocab.encode_graph(g)[0]) for i, g in zip(ids, test))
    unk = sum(vocab.encode_graph(g)[1] for g in test)
    assert report.num_unknown == unk == sum(int((i == UNK).sum()) for i in ids) > 0
    assert report.num_leaves == sum(g.num_leaves for g in test) and report.num_programs == len(test)
    assert report.rate == pytest.approx(vocab.oov_rate(test))
    assert 0 < report.programs_with_unknown <= len(test)
    counts = report.most_common
    assert counts == sorted(counts, key=lambda tc: -tc[1]) and all(vocab.leaf_id(t) == UNK for t, _ in counts)
    (record,) = [r for r in caplog.records if "test split" in r.getMessage()]
    assert record.levelno == logging.WARNING and f"{unk} of {report.num_leaves}" in record.getMessage()
    assert len(vocab) == size and all(t not in vocab._leaf_to_id for t, _ in counts)  # nothing inserted
    # Applied to its own training programs at min_freq=1 nothing is unknown, and it says so at INFO.
    full = Vocabulary.build(mbpp_graphs["train"])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="graphrepair.graphs.vocab"):
        _, clean = full.apply(mbpp_graphs["train"], label="train split")
    assert clean.num_unknown == 0 and clean.rate == 0.0 and clean.most_common == []
    assert caplog.records[-1].levelno == logging.INFO and "0 of" in caplog.records[-1].getMessage()


def test_encode_texts():
    vocab = Vocabulary.build([ProgramGraph.from_source("x = 1\n")])
    ids, num_unk = vocab.encode_texts(["x", "zz", "=", "", "1"])
    assert ids.dtype == np.int64 and ids.tolist() == [vocab.leaf_id("x"), UNK, vocab.leaf_id("="), UNK,
                                                      vocab.leaf_id("1")]
    assert num_unk == 2 and vocab.encode_texts([])[1] == 0
