"""Tests for graphrepair.loop.curriculum: the three schedules over corruption rates."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphrepair.config import load_config
from graphrepair.loop.curriculum import CURRICULA, sample_rate
from harness.config import ConfigError

RATES = [0.2, 0.5, 0.75]


def draws(epoch: int, epochs: int = 10, curriculum: str = "increasing", n: int = 600) -> Counter:
    rng = np.random.default_rng(0)
    return Counter(sample_rate(RATES, epoch, epochs, curriculum=curriculum, fraction=0.5, rng=rng)
                   for _ in range(n))


def test_increasing_unlocks_easy_to_hard_then_mixes():
    assert set(draws(0)) == {0.2}  # epochs 0..4 unlock one rate per 5/3 epochs
    assert set(draws(2)) == {0.2, 0.5}
    assert set(draws(4)) == {0.2, 0.5, 0.75}
    late = draws(9)
    assert set(late) == set(RATES) and min(late.values()) > 150  # uniform after the fraction


def test_fixed_uses_only_the_first_rate_and_mixed_all_from_the_start():
    assert set(draws(0, curriculum="fixed")) == set(draws(9, curriculum="fixed")) == {0.2}
    first = draws(0, curriculum="mixed")
    assert set(first) == set(RATES) and min(first.values()) > 150


def test_unknown_curriculum_and_empty_rates_are_errors_that_list_the_valid_ones():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="valid: \\['fixed', 'increasing', 'mixed'\\]"):
        sample_rate(RATES, 0, 10, curriculum="random", rng=rng)
    with pytest.raises(ValueError, match="rates is empty"):
        sample_rate([], 0, 10, rng=rng)
    with pytest.raises(ConfigError, match="curriculum"):
        load_config("3d", ["corruption.curriculum=random"])


@given(st.sampled_from(CURRICULA), st.integers(0, 60), st.integers(1, 60), st.integers(0, 2**32))
def test_every_draw_is_a_configured_rate(curriculum, epoch, epochs, seed):
    rate = sample_rate(RATES, epoch, epochs, curriculum=curriculum,
                       rng=np.random.default_rng(seed))
    assert rate in RATES
