"""Hard-negative mining (jepa.negatives): other repositories only, no identical bodies, every anchor
covered, k respected."""

import numpy as np
import pytest
import torch

from jepa.negatives import HardNegatives, mine_hard_negatives

REPOS, PER_REPO, D = 4, 20, 32


def planted(seed=0):
    """``[80, D]`` unit rows: row ``r * 20 + c`` is function ``c`` of repository ``r``.

    Row = 1.2 · (repository axis) + 0.6 · (cluster axis) + noise, the 4 + 20 axes orthogonal:
    same-repository cosines ~0.8, so a row's 19 nearest neighbours are its own repository's, and
    function ``c`` of every repository shares cluster ``c`` (cosine ~0.2), which makes the
    cross-repository cluster mates the nearest *other*-repository rows (the rest ~0).
    """
    rng = np.random.default_rng(seed)
    axes = np.eye(D)
    x = (1.2 * axes[:REPOS, None] + 0.6 * axes[None, REPOS:REPOS + PER_REPO]
         + 0.01 * rng.normal(size=(REPOS, PER_REPO, D))).reshape(-1, D)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    repos = [f"repo{r}" for r in range(REPOS) for _ in range(PER_REPO)]
    return x.astype(np.float32), repos


def brute_force(x, repos, k, exclude=()):
    """The ``k`` most similar rows of other repositories, by exact cosine, per row."""
    sims = x @ x.T
    repos = np.asarray(repos)
    sims[repos[:, None] == repos[None, :]] = -np.inf
    for i, j in exclude:
        sims[i, j] = sims[j, i] = -np.inf
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def test_neighbours_come_from_other_repositories_only():
    x, repos = planted()
    hard = mine_hard_negatives(x, repos, k=3, threshold=0.1)
    assert isinstance(hard, HardNegatives) and hard.ids.shape == (80, 3) and hard.ids.dtype == np.int64
    repo_of = np.asarray(repos)
    assert (repo_of[hard.ids] != repo_of[:, None]).all()
    # the cluster mates in the other 3 repositories, exactly (same rows as a brute-force search)
    mates = [{r * PER_REPO + i % PER_REPO for r in range(REPOS)} - {i} for i in range(80)]
    assert [set(row) for row in hard.ids.tolist()] == mates
    assert (hard.ids == brute_force(x, repos, 3)).all()
    # same-repository rows fill a first search of 4 (k + 1) = 16: it had to widen
    assert hard.searched_k > 16
    torch.testing.assert_close(hard.similarities, np.take_along_axis(x @ x.T, hard.ids, 1))
    assert (np.diff(hard.similarities, axis=1) <= 1e-6).all()  # most similar first
    s = hard.summary()
    assert s["coverage"] == s["coverage_full"] == s["coverage_above_all"] == 1.0
    assert s["filled_slots"] == 0.0 and s["mean_similarity"] == pytest.approx(hard.similarities.mean())
    assert repr(hard) == ("HardNegatives(n=80, k=3, threshold=0.1, coverage=1.000, "
                          "coverage_above_any=1.000)")


def test_identical_bodies_are_excluded():
    x, repos = planted()
    x[PER_REPO + 5] = x[5]  # function 5 of repo1 is a copy of function 5 of repo0
    keys = np.arange(80)
    keys[PER_REPO + 5] = 5
    for body_keys in (keys, None):  # by key, or by identical direction without keys
        hard = mine_hard_negatives(torch.from_numpy(x), repos, k=3, body_keys=body_keys)
        assert PER_REPO + 5 not in hard.ids[5] and 5 not in hard.ids[PER_REPO + 5]
        expected = brute_force(x, repos, 3, exclude=[(5, PER_REPO + 5)])
        assert [set(r) for r in hard.ids.tolist()] == [set(r) for r in expected.tolist()]
        assert hard.mask.all()


def test_every_anchor_is_covered_even_when_no_pair_reaches_the_threshold():
    x, repos = planted(seed=1)
    hard = mine_hard_negatives(x, repos, k=5, threshold=0.999)
    assert hard.ids.shape == (80, 5) and hard.mask.all() and not hard.above.any()
    assert all(len(set(row)) == 5 for row in hard.ids.tolist())  # k distinct neighbours
    s = hard.summary()
    assert (s["coverage"], s["coverage_full"], s["coverage_above_any"], s["filled_slots"]) == (
        1.0, 1.0, 0.0, 1.0)
    # partly above (the 3 cluster mates lie near 0.2): anchors with >= 1 and with all k above
    mid = mine_hard_negatives(x, repos, k=5, threshold=0.2)
    s = mid.summary()
    assert 0 == s["coverage_above_all"] < s["coverage_above_any"] < 1.0 and s["coverage_full"] == 1
    assert (mid.ids == hard.ids).all()  # the threshold never changes which neighbours are taken


def test_tiny_corpus_and_errors():
    x = np.eye(3, dtype=np.float32)[[0, 1, 2]] + 0.1
    hard = mine_hard_negatives(x, ["a", "a", "b"], k=3)
    assert hard.ids[:2].tolist() == [[2, -1, -1], [2, -1, -1]] and hard.ids[2, 2] == -1
    assert set(hard.ids[2, :2].tolist()) == {0, 1}  # a tie: either order
    assert hard.mask.sum(1).tolist() == [1, 1, 2] and np.isnan(hard.similarities[0, 1])
    assert hard.summary()["coverage"] == 1.0 and hard.summary()["coverage_full"] == 0.0
    vectors, mask = hard.lookup(torch.tensor([2, 0]), torch.from_numpy(x))
    assert vectors.shape == (2, 3, 3) and mask.tolist() == [[True, True, False], [True, False, False]]
    torch.testing.assert_close(vectors[1, 0], torch.from_numpy(x[2]))
    assert (vectors[1, 1:] == 0).all()
    with pytest.raises(ValueError, match="one repository"):
        mine_hard_negatives(x, ["a", "a", "a"])
    with pytest.raises(ValueError, match="repositories has 2 entries for 3 bodies"):
        mine_hard_negatives(x, ["a", "b"])
    with pytest.raises(ValueError, match="zero norm"):
        mine_hard_negatives(np.zeros((2, 3)), ["a", "b"])
