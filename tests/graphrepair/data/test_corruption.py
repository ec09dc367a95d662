"""graphrepair.data.corruption: exact counts, eligibility, reproducibility."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrepair.config import CorruptionConfig
from graphrepair.data.corruption import corrupt, corruption_rng, mask_texts, unmask_texts
from graphrepair.data.problems import load_mbpp
from graphrepair.features.encoding import MASK_TEXT, EncodedProgram
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from tests.graphrepair.conftest import data_dir


@given(st.lists(st.booleans(), min_size=0, max_size=200), st.floats(0, 1), st.integers(0, 10**6))
def test_exact_count_and_only_eligible(eligible, rate, seed):
    eligible = np.array(eligible, dtype=bool)
    masked = corrupt(eligible, rate, corruption_rng(seed, "t", rate))
    assert masked.sum() == round(rate * eligible.sum())
    assert not (masked & ~eligible).any()


def test_same_seed_same_mask_different_seed_differs():
    eligible = np.ones(100, dtype=bool)
    a = corrupt(eligible, 0.5, corruption_rng(1, "mbpp/2", 0.5))
    b = corrupt(eligible, 0.5, corruption_rng(1, "mbpp/2", 0.5))
    c = corrupt(eligible, 0.5, corruption_rng(2, "mbpp/2", 0.5))
    assert (a == b).all() and (a != c).any()


def test_rates_zero_and_one():
    eligible = np.array([True, False, True, True])
    assert not corrupt(eligible, 0.0, corruption_rng(0, "x", 0.0)).any()
    assert (corrupt(eligible, 1.0, corruption_rng(0, "x", 1.0)) == eligible).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(eligible, 1.5, corruption_rng(0, "x", 1.5))


# --- On real MBPP programs ------------------------------------------------------------------

CATEGORIES = ["identifier", "operator", "keyword", "literal", "punctuation"]


@functools.cache
def _problems() -> dict:
    return {q.task_id: q for q in load_mbpp(data_dir())}


@functools.cache
def _encoded(task: int, eligible: tuple[str, ...]) -> EncodedProgram:
    p = _problems()[f"mbpp/{task}"]
    g = ProgramGraph.from_source(p.source)
    return EncodedProgram.build(p, g, Vocabulary.build([g]), list(eligible))


def test_default_eligible_categories():
    assert CorruptionConfig().eligible == ["identifier", "operator", "keyword", "literal"]


@settings(max_examples=150, deadline=None)
@given(
    task=st.integers(1, 974),
    eligible=st.sets(st.sampled_from(CATEGORIES), min_size=1).map(lambda s: tuple(sorted(s))),
    rate=st.one_of(st.sampled_from([0.0, 0.2, 0.5, 0.75, 1.0]), st.floats(0, 1)),
    seed=st.integers(0, 2**32),
)
def test_corrupt_real_programs(task, eligible, rate, seed):
    enc = _encoded(task, eligible)
    cats = [c.value for c in enc.graph.leaf_categories]
    assert enc.eligible.tolist() == [c in eligible for c in cats]
    n_eligible = int(enc.eligible.sum())
    masked = corrupt(enc.eligible, rate, corruption_rng(seed, enc.problem.task_id, rate))
    assert masked.sum() == round(rate * n_eligible) and not (masked & ~enc.eligible).any()
    if rate == 0.0:
        assert not masked.any()
    if rate == 1.0:
        assert (masked == enc.eligible).all()
    # Same seed, same mask.
    again = corrupt(enc.eligible, rate, corruption_rng(seed, enc.problem.task_id, rate))
    assert (again == masked).all()
    # The corrupted program has a placeholder at every masked leaf; restoring the stored
    # originals gives the exact source back.
    texts = mask_texts(enc.orig_texts, masked)
    assert [t is None for t in texts] == masked.tolist()
    corrupted = enc.source(texts)
    assert corrupted.count(MASK_TEXT) >= masked.sum()
    assert (corrupted == enc.problem.source) == (not masked.any())
    assert enc.graph.to_source(unmask_texts(texts, enc.orig_texts)) == enc.problem.source


def test_mask_helpers_check_lengths():
    with pytest.raises(ValueError, match="3 entries for 2"):
        mask_texts(["a", "b"], np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="originals"):
        unmask_texts([None], ["a", "b"])
