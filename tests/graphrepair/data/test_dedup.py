"""Near-duplicate detection across splits (equal normalised ASTs, similar normalised token
sequences) and the training-sample draw."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphrepair.data.dataset import PreparedData, draw_training_problems
from graphrepair.data.dedup import (
    EXACT,
    SIMILAR,
    deduplicate_splits,
    most_similar,
    normalized_hash,
    normalized_tokens,
    token_similarity,
)
from graphrepair.graphs.graph import ProgramGraph


def h(src: str) -> str:
    return normalized_hash(ProgramGraph.from_source(src))


def test_renaming_literals_comments_and_whitespace_do_not_matter():
    a = "def f(x, y):\n    return x + y * 2  # add\n"
    b = "def g(p,q):\r\n\treturn p + q * 7\r\n"
    assert h(a) == h(b)


def test_structure_and_operators_matter():
    base = h("def f(x, y):\n    return x + y\n")
    assert base != h("def f(x, y):\n    return x - y\n")
    assert base != h("def f(x, y):\n    return y + x + x\n")
    # renaming is by order of appearance, so swapping uses is a different program
    assert h("def f(x, y):\n    return x\n") != h("def f(x, y):\n    return y\n")


def test_real_mbpp_near_duplicates_are_removed_from_later_splits(mbpp):
    one, two = mbpp["mbpp/17"], mbpp["mbpp/2"]
    copy = type(one)(task_id="copy", source=one.source.replace("perimeter", "result"), tests=one.tests)
    pairs = {name: [(p, ProgramGraph.from_source(p.source)) for p in ps]
             for name, ps in {"train": [one], "val": [copy, two], "test": [two]}.items()}
    out = deduplicate_splits(pairs)
    assert out.removed() == {"train": 0, "val": 1, "test": 1}
    assert [p.task_id for p, _ in out.splits["val"]] == ["mbpp/2"] and out.splits["test"] == []
    assert [(r.split, r.item.task_id, r.kind, r.match_split, r.match.task_id) for r in out.removals] \
        == [("val", "copy", EXACT, "train", "mbpp/17"), ("test", "mbpp/2", EXACT, "val", "mbpp/2")]


def toks(src: str) -> list[str]:
    return normalized_tokens(ProgramGraph.from_source(src))


def test_normalised_tokens_rename_identifiers_abstract_literals_drop_comments():
    assert toks("x = len(y)  # n\nreturn 'a'\n") == ["v0", "=", "v1", "(", "v2", ")", "return", "<string>"]


def _variants(mbpp):
    """mbpp/3 (43 normalised tokens) with one identifier changed (``n % i`` -> ``i % i``): one
    token of 43 differs, similarity 1 - 1/43; and the same with every name renamed too."""
    prime = mbpp["mbpp/3"]
    one_off = prime.source.replace("if n % i", "if i % i")
    renamed = one_off.replace("result", "flag").replace("is_not_prime", "composite")
    return prime, [dataclasses.replace(prime, task_id=t, source=s)
                   for t, s in (("one-off", one_off), ("renamed", renamed))]


def test_a_program_one_identifier_away_is_removed_at_0_9_and_kept_at_0_99(mbpp):
    prime, variants = _variants(mbpp)
    assert token_similarity(toks(prime.source), toks(variants[0].source)) == pytest.approx(1 - 1 / 43)
    unrelated = mbpp["mbpp/2"]
    pairs = {"train": [(prime, ProgramGraph.from_source(prime.source))],
             "test": [(p, ProgramGraph.from_source(p.source)) for p in [*variants, unrelated]]}
    strict = deduplicate_splits(pairs, ("train", "test"), similarity=0.99)
    assert [p.task_id for p, _ in strict.splits["test"]] == ["one-off", "renamed", "mbpp/2"]
    assert strict.removed_by_kind() == {"train": {EXACT: 0, SIMILAR: 0}, "test": {EXACT: 0, SIMILAR: 0}}
    loose = deduplicate_splits(pairs, ("train", "test"), similarity=0.9)
    assert [p.task_id for p, _ in loose.splits["test"]] == ["mbpp/2"]  # the unrelated one is kept
    assert loose.removed_by_kind() == {"train": {EXACT: 0, SIMILAR: 0}, "test": {EXACT: 0, SIMILAR: 2}}
    assert {(r.item.task_id, r.match.task_id, round(r.similarity, 4)) for r in loose.removals} \
        == {("one-off", "mbpp/3", 0.9767), ("renamed", "mbpp/3", 0.9767)}
    assert deduplicate_splits(pairs, ("train", "test")).removed() == {"train": 0, "test": 0}  # similarity off


def test_the_counts_and_each_removal_reach_the_data_summary(mbpp):
    prime, variants = _variants(mbpp)
    copy = dataclasses.replace(prime, task_id="copy", source=prime.source.replace("result", "r"))
    pairs = {"train": [(prime, ProgramGraph.from_source(prime.source))],
             "val": [(variants[0], ProgramGraph.from_source(variants[0].source))],
             "test": [(copy, ProgramGraph.from_source(copy.source))]}
    data = PreparedData(vocab=[], splits={})  # summary() needs only len(vocab)
    data.record_removals(deduplicate_splits(pairs, similarity=0.9))
    summary = data.summary()
    assert summary["near_duplicates_removed"] == {"train": 0, "val": 1, "test": 1}
    assert summary["near_duplicates_by_kind"] == {"train": {EXACT: 0, SIMILAR: 0}, "val": {EXACT: 0, SIMILAR: 1},
                                                  "test": {EXACT: 1, SIMILAR: 0}}
    assert summary["near_duplicates"] == [
        {"task_id": "one-off", "split": "val", "kind": SIMILAR, "duplicates": "mbpp/3",
         "duplicates_split": "train", "similarity": 0.9767},
        {"task_id": "copy", "split": "test", "kind": EXACT, "duplicates": "mbpp/3",
         "duplicates_split": "train", "similarity": 1.0}]


@given(st.lists(st.lists(st.sampled_from("abcde"), max_size=12), max_size=8),
       st.lists(st.sampled_from("abcde"), max_size=12), st.sampled_from([0.3, 0.5, 0.8, 1.0]))
def test_the_cheap_bounds_do_not_change_the_most_similar_program(candidates, b, threshold):
    ratios = [token_similarity(a, b) for a in candidates]
    best = max(ratios, default=0.0)
    expected = (ratios.index(best), best) if best >= threshold else None
    assert most_similar(b, candidates, threshold) == expected


def test_a_threshold_outside_0_1_is_an_error():
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\], got 1.5"):
        deduplicate_splits({}, similarity=1.5)


@given(st.integers(1, 50), st.integers(0, 200), st.integers(0, 2**32 - 1))
def test_draw_is_without_replacement_then_balanced(n_problems, n_samples, seed):
    picks = draw_training_problems(n_problems, n_samples, np.random.default_rng(seed))
    assert len(picks) == n_samples
    counts = np.bincount(picks, minlength=n_problems)
    assert counts.max() - counts.min() <= 1 if n_samples >= n_problems else counts.max() <= 1
