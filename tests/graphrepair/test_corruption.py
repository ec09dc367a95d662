"""graphrepair.corruption: exact counts, eligibility, reproducibility."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphrepair.corruption import corrupt, corruption_rng


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
