"""Near-duplicate detection across splits and the training-sample draw."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from graphrepair.data.dataset import draw_training_problems
from graphrepair.data.dedup import deduplicate_splits, normalized_hash
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
    out, removed = deduplicate_splits(pairs)
    assert removed == {"train": 0, "val": 1, "test": 1}
    assert [p.task_id for p, _ in out["val"]] == ["mbpp/2"] and out["test"] == []


@given(st.integers(1, 50), st.integers(0, 200), st.integers(0, 2**32 - 1))
def test_draw_is_without_replacement_then_balanced(n_problems, n_samples, seed):
    picks = draw_training_problems(n_problems, n_samples, np.random.default_rng(seed))
    assert len(picks) == n_samples
    counts = np.bincount(picks, minlength=n_problems)
    assert counts.max() - counts.min() <= 1 if n_samples >= n_problems else counts.max() <= 1
