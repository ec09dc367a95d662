"""Layer statistics and FAISS neighbours on synthetic embeddings with known answers."""

import numpy as np
import pytest

from jepa.geometry import (
    KNNResult,
    knn,
    layer_selection,
    layer_statistics,
    plot_layer_selection,
    plot_similarity_distribution,
)


def _gaussian(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_isotropic_gaussian_has_no_preferred_direction():
    d = 32
    s = layer_statistics(_gaussian(2000, d))
    assert abs(s["mean_cosine"]) < 0.01
    assert abs(s["mean_cosine_centred"]) < 0.01
    assert s["anisotropy"] < 2 / d  # 1/D for a perfectly isotropic cloud
    assert s["effective_rank"] > 0.95 * d
    assert s["effective_rank_max"] == d
    assert abs(s["cosine_q50"]) < 0.02 and s["cosine_std"] == pytest.approx(1 / np.sqrt(d), rel=0.1)


def test_rank_one_plus_noise_is_anisotropic_with_low_effective_rank():
    rng = np.random.default_rng(1)
    d = 32
    a = rng.standard_normal((2000, 1))  # zero-mean coefficients on one direction
    x = a * rng.standard_normal(d) + 0.01 * rng.standard_normal((2000, d))
    s = layer_statistics(x)
    assert s["anisotropy"] > 0.99
    assert s["effective_rank"] < 0.1 * d
    # the raw mean cosine does not see it (half the rows point each way): a different quantity
    assert abs(s["mean_cosine"]) < 0.05
    shifted = layer_statistics(x + 5.0)  # a common offset makes the cone, not the anisotropy
    assert shifted["mean_cosine"] > 0.9
    assert shifted["anisotropy"] == pytest.approx(s["anisotropy"], abs=1e-9)
    assert shifted["effective_rank"] == pytest.approx(s["effective_rank"], rel=1e-6)
    assert shifted["mean_cosine_centred"] == pytest.approx(s["mean_cosine_centred"], abs=1e-9)


def test_identical_vectors():
    s = layer_statistics(np.tile(np.array([[1.0, -2.0, 0.5]]), (10, 1)))
    assert s["mean_cosine"] == pytest.approx(1.0)
    assert s["cosine_q05"] == pytest.approx(1.0)
    for key in ("mean_cosine_centred", "anisotropy", "effective_rank"):  # no centred direction
        assert np.isnan(s[key])


@pytest.mark.parametrize("shape", [(40, 12), (12, 40)])  # D <= N and D > N Gram matrices
def test_statistics_match_direct_definitions(shape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape) * np.linspace(0.2, 3.0, shape[1]) + 1.5
    s = layer_statistics(x, sample_pairs=None)
    n = shape[0]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = u @ u.T
    assert s["mean_cosine"] == pytest.approx((cos.sum() - n) / (n * (n - 1)), abs=1e-12)
    pairs = cos[np.triu_indices(n, k=1)]
    assert s["pairs"] == len(pairs)
    assert s["cosine_q50"] == pytest.approx(np.quantile(pairs, 0.5), abs=1e-12)
    c = x - x.mean(axis=0)
    uc = c / np.linalg.norm(c, axis=1, keepdims=True)
    assert s["mean_cosine_centred"] == pytest.approx(((uc @ uc.T).sum() - n) / (n * (n - 1)), abs=1e-12)
    sv = np.linalg.svd(c, compute_uv=False)
    sv = sv[sv > sv[0] * 1e-10]
    p = sv / sv.sum()
    assert s["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)
    assert s["effective_rank_max"] == min(n - 1, shape[1])
    assert s["anisotropy"] == pytest.approx(sv[0] ** 2 / (sv ** 2).sum(), rel=1e-6)  # PC1 share


def test_sampled_pairs_are_seeded():
    x = _gaussian(300, 8)
    a = layer_statistics(x, sample_pairs=500, seed=3)
    assert a == layer_statistics(x, sample_pairs=500, seed=3)
    assert a["pairs"] == 500
    assert a["cosine_q50"] != layer_statistics(x, sample_pairs=500, seed=4)["cosine_q50"]


def test_bad_embeddings_are_refused_with_the_reason():
    x = _gaussian(10, 4)
    x[3] = 0
    with pytest.raises(ValueError, match="all zeros"):
        layer_statistics(x)
    x[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        layer_statistics(x)
    with pytest.raises(ValueError, match="2-D"):
        layer_statistics(np.ones(5))
    with pytest.raises(ValueError, match="sample_pairs"):
        layer_statistics(np.ones((5, 2)) + np.eye(5, 2), sample_pairs=0)


def test_layer_selection_rows_and_plot(tmp_path):
    per_layer = {4: _gaussian(100, 8, 1), 0: _gaussian(100, 8, 0) + 3.0, 2: _gaussian(100, 8, 2)}
    rows = layer_selection(per_layer, sample_pairs=1000)
    assert [r["layer"] for r in rows] == [0, 2, 4]
    assert rows[0]["mean_cosine"] > 0.5 > abs(rows[1]["mean_cosine"])
    path = plot_layer_selection(rows, tmp_path / "layers.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="same functions"):
        layer_selection({0: _gaussian(10, 4), 1: _gaussian(11, 4)})
    with pytest.raises(ValueError, match="at least one layer"):
        layer_selection({})


def _twins(n_pairs=30, d=16, seed=0):
    """``n_pairs`` tight clusters of two, one member in repository "a" and one in "b", and a few
    loose functions of "a": row ``2c`` (repo a) and ``2c + 1`` (repo b) are the planted pair."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_pairs, d))
    x = np.repeat(centres, 2, axis=0) + 0.01 * rng.standard_normal((2 * n_pairs, d))
    repos = ["a", "b"] * n_pairs
    return np.vstack([x, rng.standard_normal((10, d))]).astype(np.float32), repos + ["a"] * 10


def test_knn_finds_planted_cross_repository_pairs():
    x, repos = _twins()
    res = knn(x, repos, k=3)
    assert isinstance(res, KNNResult) and res.ids.shape == res.similarities.shape == (70, 3)
    assert (res.ids != np.arange(70)[:, None]).all()  # self excluded
    assert (np.diff(res.similarities, axis=1) <= 1e-6).all()  # most similar first
    twin = np.arange(60) ^ 1
    assert (res.ids[:60, 0] == twin).all()
    assert res.top1_cross_share >= 60 / 70
    assert res.same_repository_precision(1) <= 10 / 70
    pairs = res.top_cross_pairs(30)
    assert {(i, j) for i, j, _ in pairs} == {(2 * c, 2 * c + 1) for c in range(30)}
    assert all(s > 0.99 for *_, s in pairs)
    assert [s for *_, s in pairs] == sorted((s for *_, s in pairs), reverse=True)
    q = res.similarity_quantiles()
    assert q["cross"]["q50"] > q["same"]["q50"]
    assert q["cross"]["count"] + q["same"]["count"] == 70 * 3
    assert res.random_same_repository_rate == pytest.approx((40 * 39 + 30 * 29) / (70 * 69))
    summary = res.summary()
    assert summary["k"] == 3
    assert summary["same_repository_precision_at_3"] == res.same_repository_precision()
    assert repr(res).startswith("KNNResult(n=70, k=3, centred=False")


def test_knn_with_exact_duplicates_never_returns_self():
    x = _gaussian(20, 8)
    x[:5] = x[0]  # five identical embeddings
    repos = ["a", "b", "a", "b", "a"] + ["c"] * 15
    res = knn(x, repos, k=2)
    assert (res.ids != np.arange(20)[:, None]).all()
    assert set(res.ids[:5].ravel()) <= set(range(5))
    assert res.similarities[:5] == pytest.approx(1.0, abs=1e-6)
    assert res.duplicate_neighbours >= 3
    top = res.top_cross_pairs(5, max_similarity=0.9999)
    assert all(s <= 0.9999 for *_, s in top)


def test_knn_centre_equals_searching_centred_vectors():
    x = _gaussian(50, 6) + 4.0
    repos = [f"r{i % 5}" for i in range(50)]
    centre = x.mean(axis=0)
    a = knn(x, repos, k=4, centre=centre)
    b = knn(x - centre, repos, k=4)
    assert a.centred and not b.centred
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.similarities, b.similarities, atol=1e-6)


def test_knn_refuses_bad_input():
    x = _gaussian(10, 4)
    with pytest.raises(ValueError, match="k must lie"):
        knn(x, ["a"] * 10, k=10)
    with pytest.raises(ValueError, match="one per row"):
        knn(x, ["a"] * 9)
    with pytest.raises(ValueError, match="zero norm after centring"):
        knn(x, ["a"] * 10, k=2, centre=x[0])
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        knn(x, ["a"] * 10, k=2, centre=np.zeros(3))


def test_similarity_distribution_plot(tmp_path):
    x, repos = _twins()
    res = knn(x, repos, k=3)
    edges, same, cross = res.similarity_histogram(bins=10)
    assert len(edges) == 11 and same.sum() + cross.sum() == 70 * 3
    path = plot_similarity_distribution(res, tmp_path / "sims.png", bins=10)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_faiss_loader_picks_avx512_kernels_unless_the_user_chose():
    import os
    import subprocess
    import sys

    from jepa.faiss_loader import has_avx512

    code = ("import os; from jepa.faiss_loader import import_faiss; f = import_faiss(); "
            "print(os.environ.get('OPENBLAS_CORETYPE', ''), hasattr(f, 'IndexFlatIP'))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == (["SkylakeX", "True"] if has_avx512() else ["True"])
    chosen = subprocess.run([sys.executable, "-c", code], env={**env, "OPENBLAS_CORETYPE": "Haswell"},
                            capture_output=True, text=True, check=True).stdout.split()
    assert chosen == ["Haswell", "True"]
