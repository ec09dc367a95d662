"""Geometry of teacher embeddings: per-layer statistics (Phase 0.1) and nearest neighbours (0.2).

Phase 0 asks whether a frozen teacher's mean-pooled body embeddings tell functions apart, and at
which layer (``layer = i`` is ``hidden_states[i]``, DESIGN.md "jepa: terms and semantics"). Pure
functions over arrays; ``python -m jepa.phase0`` reads the arrays from the state store and writes
the report through :mod:`harness.report`.

Per layer (:func:`layer_statistics`, :func:`layer_selection`, :func:`plot_layer_selection`), for
embeddings ``x_1 .. x_N`` in ``R^D`` with unit vectors ``u_i = x_i / ||x_i||``:

* **mean pairwise cosine** over the ``N (N - 1)`` ordered pairs ``i != j``, exact in ``O(N D)``:
  ``mean_{i != j} cos(x_i, x_j) = (N ||ū||² - 1) / (N - 1)`` with ``ū = mean_i u_i``. This is the
  anisotropy of Ethayarajh ("How Contextual are Contextualized Word Representations?", EMNLP
  2019: the expected cosine of random pairs), computed exactly instead of sampled. Near 1: every
  embedding points into one narrow cone and raw cosines cannot tell functions apart.
* **mean pairwise cosine after centring** (``x_i - mean_j x_j``), the same formula; evaluation
  ranks by this cosine (centred with the training mean).
* **anisotropy** = the share of variance on the first principal component of the centred
  embeddings, ``λ_1 / Σ_k λ_k`` (``λ_k``: eigenvalues of the covariance). The raw mean cosine sees
  the common offset (the cone); this sees whether the *variation* between functions is dominated by
  one direction, as with the few "rogue" dimensions of contextual models (Mu & Viswanath, "All-but-
  the-Top", ICLR 2018: the top principal components carry most of the variance; Timkey & van
  Schijndel, "All Bark and No Bite: Rogue Dimensions ...", EMNLP 2021). ``1/D`` for an isotropic
  cloud, near 1 for a rank-1 one.
* **effective rank** (Roy & Vetterli, "The effective rank: a measure of effective
  dimensionality", EUSIPCO 2007): ``exp(H(p))`` with ``p_k = σ_k / Σ_j σ_j`` the normalised
  singular values of the centred ``[N, D]`` matrix and ``H`` the Shannon entropy (nats,
  ``0 log 0 = 0``). Between 1 and ``min(N - 1, D)`` (the largest rank of a centred matrix).

Nearest neighbours (:func:`knn`, :class:`KNNResult`): cosine through FAISS ``IndexFlatIP`` (Johnson,
Douze & Jégou, "Billion-scale similarity search with GPUs", IEEE TBD 2019) on L2-normalised,
optionally centred vectors, self excluded, with the neighbours split into same- and
cross-repository ones: a cross-repository neighbour at high similarity is a template family or an
independent implementation of the same thing, not a copy within one code base.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["KNNResult", "knn", "layer_selection", "layer_statistics", "plot_layer_selection",
           "plot_similarity_distribution"]

_CHUNK = 4096
"""Rows (or pairs) converted to float64 at a time: bounds the extra memory to ``_CHUNK · D`` floats."""
_MAX_ALL_PAIRS = 20_000_000
"""``sample_pairs=None`` (every pair) is refused above this many pairs: pass a sample size."""
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _check_matrix(name: str, x: np.ndarray, *, min_rows: int = 2) -> np.ndarray:
    """``x`` as a 2-D array with at least ``min_rows`` rows and only finite values."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D], got shape {x.shape}")
    if x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(f"{name} needs at least {min_rows} rows and 1 column, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"{name}: {len(bad)} of {len(x)} rows hold NaN or infinite values "
                         f"(first rows {bad[:5].tolist()}); drop or recompute them first")
    return x


def _row_norms(x: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """``[N]`` L2 norms of the rows of ``x - shift`` in float64, computed ``_CHUNK`` rows at a time."""
    out = np.empty(len(x), dtype=np.float64)
    for s in range(0, len(x), _CHUNK):
        rows = x[s:s + _CHUNK].astype(np.float64)
        if shift is not None:
            rows -= shift
        out[s:s + _CHUNK] = np.linalg.norm(rows, axis=1)
    return out


def _sum_of_units(x: np.ndarray, norms: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """``[D]`` sum of ``(x_i - shift) / norms_i`` over the rows with a positive norm (float64)."""
    total = np.zeros(x.shape[1], dtype=np.float64)
    for s in range(0, len(x), _CHUNK):
        rows = x[s:s + _CHUNK].astype(np.float64)
        if shift is not None:
            rows -= shift
        n = norms[s:s + _CHUNK]
        keep = n > 0
        total += (rows[keep] / n[keep, None]).sum(axis=0)
    return total


def _mean_cosine(total: np.ndarray, m: int) -> float:
    """Mean cosine over the ``m (m - 1)`` ordered pairs of ``m`` unit vectors summing to ``total``.

    ``Σ_{i != j} u_i·u_j = ||Σ_i u_i||² - Σ_i ||u_i||² = ||total||² - m``.
    """
    if m < 2:
        return float("nan")
    return float((total @ total - m) / (m * (m - 1)))


def _centred_spectrum(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Squared singular values ``σ_k²`` of ``x - mean``, descending, float64.

    Eigenvalues of the smaller Gram matrix (``[D, D]`` accumulated ``_CHUNK`` rows at a time when
    ``D <= N``, else ``[N, N]``); those below ``λ_max · max(N, D) · ε`` (float64 round-off of the
    Gram product) are set to 0, as :func:`numpy.linalg.matrix_rank` does for singular values.
    """
    n, d = x.shape
    if d <= n:
        gram = np.zeros((d, d), dtype=np.float64)
        for s in range(0, n, _CHUNK):
            rows = x[s:s + _CHUNK].astype(np.float64) - mean  # (chunk, D)
            gram += rows.T @ rows
    else:
        rows = x.astype(np.float64) - mean  # (N, D), N < D
        gram = rows @ rows.T
    eig = np.linalg.eigvalsh(gram)[::-1]
    tol = max(float(eig[0]), 0.0) * max(n, d) * np.finfo(np.float64).eps
    return np.where(eig > tol, eig, 0.0)


def _pair_cosines(x: np.ndarray, i: np.ndarray, j: np.ndarray, norms: np.ndarray,
                  shift: np.ndarray | None = None) -> np.ndarray:
    """``[P]`` cosines of the pairs ``(i[p], j[p])`` of rows of ``x - shift`` (float64)."""
    out = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), _CHUNK):
        a = x[i[s:s + _CHUNK]].astype(np.float64)
        b = x[j[s:s + _CHUNK]].astype(np.float64)
        if shift is not None:
            a -= shift
            b -= shift
        scale = norms[i[s:s + _CHUNK]] * norms[j[s:s + _CHUNK]]
        out[s:s + _CHUNK] = np.einsum("pd,pd->p", a, b) / scale  # (chunk,) dot products
    return out


def _pairs(rows: np.ndarray, sample_pairs: int | None, rng: np.random.Generator):
    """Pairs ``i != j`` of ``rows`` (indices): all unordered pairs, or ``sample_pairs`` uniform draws."""
    m = len(rows)
    if sample_pairs is None:
        if m * (m - 1) // 2 > _MAX_ALL_PAIRS:
            raise ValueError(f"sample_pairs=None asks for all {m * (m - 1) // 2:,} pairs of {m:,} "
                             f"embeddings (more than {_MAX_ALL_PAIRS:,}); pass sample_pairs=100_000")
        i, j = np.triu_indices(m, k=1)
    else:
        i = rng.integers(0, m, size=sample_pairs)
        j = rng.integers(0, m - 1, size=sample_pairs)
        j = j + (j >= i)  # uniform over the m - 1 rows other than i
    return rows[i], rows[j]


def _distribution(prefix: str, cos: np.ndarray) -> dict[str, float]:
    if not len(cos):
        return {f"{prefix}_std": float("nan"), **{f"{prefix}_q{round(q * 100):02d}": float("nan")
                                                   for q in _QUANTILES}}
    qs = np.quantile(cos, _QUANTILES)
    return {f"{prefix}_std": float(cos.std()),
            **{f"{prefix}_q{round(q * 100):02d}": float(v) for q, v in zip(_QUANTILES, qs)}}


def layer_statistics(embeddings: np.ndarray, *, sample_pairs: int | None = 100_000,
                     seed: int = 0) -> dict[str, float | int]:
    """Cosine, anisotropy and effective-rank statistics of one layer's embeddings.

    Definitions and papers in the module docstring. Means, the spectrum and the pair cosines are
    computed in float64, ``4096`` rows at a time (extra memory ``O(4096 · D + D²)``). The exact
    mean cosines need no sampling; ``sample_pairs`` only sets how the *spread* (standard deviation,
    quantiles) of the pairwise cosines is estimated.

    Args:
        embeddings: ``[N, D]`` one embedding per function (e.g. the mean-pooled body hidden
            states), any float dtype; ``N >= 2``.
        sample_pairs: number of random pairs ``(i, j), i != j`` drawn uniformly (with replacement)
            for the spread; ``None`` = every unordered pair (refused above 20 million pairs).
        seed: seed of the pair sampling (the same seed gives the same quantiles).

    Returns:
        A dict of numbers: ``n``, ``dim`` (int); ``mean_norm`` (mean L2 norm of the raw embeddings);
        ``mean_cosine`` (raw, exact) with ``cosine_std`` and quantiles ``cosine_q05 .. cosine_q95``
        (``q05, q25, q50, q75, q95``) of the sampled pairs; ``mean_cosine_centred`` with
        ``cosine_centred_std`` and ``cosine_centred_q05 .. q95``; ``anisotropy`` (share of the
        centred variance on the first principal component, in [0, 1]); ``effective_rank`` and
        ``effective_rank_max = min(N - 1, D)`` and their ratio ``effective_rank_fraction``;
        ``pairs`` (int, pairs behind the spread). Rows equal to the mean have no centred direction
        and are left out of the centred cosines; when every row is (identical embeddings) the
        centred cosines, ``anisotropy`` and ``effective_rank`` are NaN.

    Raises:
        ValueError: ``embeddings`` is not 2-D, has fewer than 2 rows, holds NaN/inf or a zero row
            (no direction, no cosine); ``sample_pairs < 1``; too many pairs for ``None``.
    """
    x = _check_matrix("embeddings", embeddings)
    if sample_pairs is not None and sample_pairs < 1:
        raise ValueError(f"sample_pairs must be >= 1 or None, got {sample_pairs}")
    n, d = x.shape
    norms = _row_norms(x)
    if (norms == 0).any():
        bad = np.flatnonzero(norms == 0)
        raise ValueError(f"embeddings: {len(bad)} rows are all zeros (first rows {bad[:5].tolist()}); "
                         f"a zero vector has no cosine: drop those functions first")
    mean = np.zeros(d, dtype=np.float64)
    for s in range(0, n, _CHUNK):
        mean += x[s:s + _CHUNK].astype(np.float64).sum(axis=0)
    mean /= n
    norms_c = _row_norms(x, mean)
    # a row equal to the mean (up to round-off of the mean) has no centred direction
    norms_c = np.where(norms_c > 1e-9 * norms.mean(), norms_c, 0.0)
    moving = np.flatnonzero(norms_c > 0)

    eig = _centred_spectrum(x, mean)
    total = float(eig.sum())
    if total > 0:
        sigma = np.sqrt(eig[eig > 0])
        p = sigma / sigma.sum()
        anisotropy = float(eig[0] / total)
        effective_rank = float(np.exp(-(p * np.log(p)).sum()))
    else:
        anisotropy = effective_rank = float("nan")
    rank_max = min(n - 1, d)

    rng = np.random.default_rng(seed)
    i, j = _pairs(np.arange(n), sample_pairs, rng)
    raw = _pair_cosines(x, i, j, norms)
    if len(moving) >= 2:
        ic, jc = _pairs(moving, sample_pairs, rng)
        centred = _pair_cosines(x, ic, jc, norms_c, mean)
    else:
        centred = np.empty(0)
    return {
        "n": n,
        "dim": d,
        "mean_norm": float(norms.mean()),
        "mean_cosine": _mean_cosine(_sum_of_units(x, norms), n),
        **_distribution("cosine", raw),
        "mean_cosine_centred": _mean_cosine(_sum_of_units(x, norms_c, mean), len(moving)),
        **_distribution("cosine_centred", centred),
        "anisotropy": anisotropy,
        "effective_rank": effective_rank,
        "effective_rank_max": rank_max,
        "effective_rank_fraction": effective_rank / rank_max,
        "pairs": len(raw),
    }


def layer_selection(per_layer: Mapping[int, np.ndarray], *, sample_pairs: int | None = 100_000,
                    seed: int = 0) -> list[dict[str, float | int]]:
    """:func:`layer_statistics` of every layer, one row per layer in increasing layer order.

    Args:
        per_layer: layer index (``hidden_states[i]`` convention) -> ``[N, D]`` embeddings of the
            same functions at that layer.
        sample_pairs, seed: as in :func:`layer_statistics` (the same pairs at every layer).

    Returns:
        ``[{"layer": i, **layer_statistics(per_layer[i])}, ...]`` sorted by ``i``.

    Raises:
        ValueError: ``per_layer`` is empty, or the layers hold different numbers of functions
            (the statistics would not be comparable); see :func:`layer_statistics` for the rest.
    """
    if not per_layer:
        raise ValueError("layer_selection needs at least one layer, got none")
    sizes = {layer: np.shape(e)[0] for layer, e in per_layer.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"every layer must hold the same functions; rows per layer: {sizes}")
    return [{"layer": layer, **layer_statistics(per_layer[layer], sample_pairs=sample_pairs, seed=seed)}
            for layer in sorted(per_layer)]


def plot_layer_selection(rows: Sequence[Mapping[str, float]], path: str | os.PathLike, *,
                         title: str = "Teacher layer selection") -> Path:
    """Plot the rows of :func:`layer_selection` against the layer (PNG, :func:`harness.plots.line_plot`).

    Four unitless curves on one axis: mean pairwise cosine (raw and centred), anisotropy (first
    principal component's share of the variance) and the effective rank as a fraction of its
    maximum ``min(N - 1, D)``.

    Args:
        rows: from :func:`layer_selection`.
        path: the PNG file (written atomically).
        title: figure title.

    Returns:
        ``path``.

    Raises:
        ValueError: ``rows`` is empty.
    """
    from harness.plots import line_plot

    if not rows:
        raise ValueError("plot_layer_selection needs at least one row, got none")
    keys = {"mean cosine (raw)": "mean_cosine", "mean cosine (centred)": "mean_cosine_centred",
            "anisotropy (PC1 share)": "anisotropy",
            "effective rank / min(N-1, D)": "effective_rank_fraction"}
    series = {name: [r[key] for r in rows] for name, key in keys.items()}
    return line_plot(path, series, title=title, xlabel="layer (hidden_states index)",
                     ylabel="cosine / share / fraction", x=[r["layer"] for r in rows])


@dataclass(frozen=True, eq=False)
class KNNResult:
    """The ``k`` nearest neighbours of every embedding among the others (from :func:`knn`).

    Attributes:
        ids: ``[N, k]`` int64 neighbour row indices, most similar first; never the row itself.
        similarities: ``[N, k]`` float32 cosines in [-1, 1], descending along each row.
        repositories: ``[N]`` the repository of each row (str).
        centred: whether a centre was subtracted before the cosine.

    Shapes:
        ``cross``: ``[N, k]`` bool, the neighbour is in another repository.
    """

    ids: np.ndarray
    similarities: np.ndarray
    repositories: np.ndarray
    centred: bool
    cross: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cross", self.repositories[self.ids] != self.repositories[:, None])

    def __repr__(self) -> str:
        return (f"KNNResult(n={self.n}, k={self.k}, centred={self.centred}, "
                f"top1_cross_share={self.top1_cross_share:.3f})")

    @property
    def n(self) -> int:
        """Number of embeddings (queries)."""
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        """Neighbours per embedding."""
        return int(self.ids.shape[1])

    @property
    def top1_cross_share(self) -> float:
        """Share of the embeddings whose nearest neighbour is in another repository."""
        return float(self.cross[:, 0].mean())

    @property
    def cross_share(self) -> float:
        """Share of all ``N · k`` neighbours that are in another repository."""
        return float(self.cross.mean())

    def same_repository_precision(self, at: int | None = None) -> float:
        """Mean over embeddings of the share of the first ``at`` neighbours in the same repository.

        Precision@``at`` with "same repository" as the relevance; compare with
        :attr:`random_same_repository_rate`, its value for random neighbours.

        Raises:
            ValueError: ``at`` outside ``1 .. k``.
        """
        at = self.k if at is None else at
        if not 1 <= at <= self.k:
            raise ValueError(f"at must lie in 1..{self.k} (the k of this search), got {at}")
        return float((~self.cross[:, :at]).mean())

    @property
    def random_same_repository_rate(self) -> float:
        """Chance that a random other row is in the same repository, ``Σ_r n_r (n_r - 1) / (N (N - 1))``."""
        _, counts = np.unique(self.repositories, return_counts=True)
        return float((counts * (counts - 1)).sum() / (self.n * (self.n - 1)))

    @property
    def duplicate_neighbours(self) -> int:
        """Unordered neighbour pairs at cosine >= 1 - 1e-6 (identical directions, e.g. duplicates)."""
        return len(self._pairs(np.ones_like(self.cross), min_similarity=1 - 1e-6))

    def similarity_quantiles(self, quantiles: Sequence[float] = _QUANTILES
                             ) -> dict[str, dict[str, float]]:
        """Count, mean and quantiles of the neighbour cosines, same- vs cross-repository.

        Over all ``N · k`` (query, neighbour) slots, so a mutual pair counts twice.

        Returns:
            ``{"same": {...}, "cross": {...}}``, each ``{"count", "mean", "q05", ...}`` (NaN
            statistics for an empty side).
        """
        out = {}
        for side, mask in (("same", ~self.cross), ("cross", self.cross)):
            sims = self.similarities[mask].astype(np.float64)
            stats = {"count": float(len(sims)),
                     "mean": float(sims.mean()) if len(sims) else float("nan")}
            qs = np.quantile(sims, quantiles) if len(sims) else [float("nan")] * len(quantiles)
            stats.update({f"q{round(q * 100):02d}": float(v) for q, v in zip(quantiles, qs)})
            out[side] = stats
        return out

    def similarity_histogram(self, bins: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Histogram of the neighbour cosines, same- vs cross-repository, on shared bins.

        Args:
            bins: number of equal-width bins between the smallest and largest neighbour cosine.

        Returns:
            ``(edges [bins + 1], same_counts [bins], cross_counts [bins])``.
        """
        edges = np.histogram_bin_edges(self.similarities, bins=bins)
        same, _ = np.histogram(self.similarities[~self.cross], bins=edges)
        cross, _ = np.histogram(self.similarities[self.cross], bins=edges)
        return edges, same, cross

    def _pairs(self, mask: np.ndarray, min_similarity: float | None = None,
               max_similarity: float | None = None) -> list[tuple[int, int, float]]:
        """Unique unordered neighbour pairs ``(i < j, similarity)`` among the slots in ``mask``."""
        rows = np.repeat(np.arange(self.n), self.k).reshape(self.n, self.k)
        keep = mask.copy()
        if min_similarity is not None:
            keep &= self.similarities >= min_similarity
        if max_similarity is not None:
            keep &= self.similarities <= max_similarity
        a, b, s = rows[keep], self.ids[keep], self.similarities[keep].astype(np.float64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        # each pair once; if both directions are present keep the larger (they differ by round-off)
        order = np.lexsort((-s, hi, lo))
        lo, hi, s = lo[order], hi[order], s[order]
        first = np.ones(len(lo), dtype=bool)
        first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
        return [(int(i), int(j), float(v)) for i, j, v in zip(lo[first], hi[first], s[first])]

    def top_cross_pairs(self, n: int, *, max_similarity: float | None = None
                        ) -> list[tuple[int, int, float]]:
        """The ``n`` most similar cross-repository neighbour pairs, each unordered pair once.

        Args:
            n: how many pairs (fewer when fewer exist).
            max_similarity: leave out pairs above this cosine (e.g. ``0.9999`` to skip exact
                duplicates that survived de-duplication and show the template families).

        Returns:
            ``[(i, j, cosine), ...]`` with ``i < j`` row indices, by decreasing cosine (ties by
            ``i``, then ``j``).
        """
        pairs = self._pairs(self.cross, max_similarity=max_similarity)
        pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
        return pairs[:n]

    def summary(self) -> dict[str, object]:
        """The numbers for ``report.json``: shares, precisions, random rate, similarity quantiles."""
        return {
            "n": self.n, "k": self.k, "centred": self.centred,
            "top1_cross_share": self.top1_cross_share,
            "cross_share": self.cross_share,
            "same_repository_precision_at_1": self.same_repository_precision(1),
            f"same_repository_precision_at_{self.k}": self.same_repository_precision(),
            "random_same_repository_rate": self.random_same_repository_rate,
            "duplicate_neighbours": self.duplicate_neighbours,
            "similarity": self.similarity_quantiles(),
        }


def knn(embeddings: np.ndarray, repositories: Sequence[str], k: int = 10, *,
        centre: np.ndarray | None = None) -> KNNResult:
    """Exact cosine ``k``-nearest neighbours of every embedding among the others, with FAISS.

    Vectors are centred (when ``centre`` is given: use the training mean, as evaluation does) and
    L2-normalised, then searched with ``faiss.IndexFlatIP`` (exact inner product) for ``k + 1``
    neighbours; the row itself is removed wherever it appears. With exact duplicates a row can tie
    with its copies at cosine 1 and FAISS may rank them before the row itself; then the row is not
    among the ``k + 1`` and the last one is dropped, so every row keeps ``k`` neighbours other than
    itself (:attr:`KNNResult.duplicate_neighbours` counts such pairs).

    Args:
        embeddings: ``[N, D]`` float embeddings (copied to float32 for FAISS).
        repositories: ``[N]`` repository name of each row.
        k: neighbours per row, ``1 <= k <= N - 1``.
        centre: ``[D]`` vector subtracted from every row before normalising, or ``None``.

    Returns:
        A :class:`KNNResult`.

    Raises:
        ValueError: bad shapes, NaN/inf, ``k`` out of range, or a row of zero norm (after
            centring): it has no direction.
    """
    from jepa.faiss_loader import import_faiss

    faiss = import_faiss()

    x = _check_matrix("embeddings", embeddings).astype(np.float32)  # a copy: normalised in place
    n, d = x.shape
    repos = np.asarray([str(r) for r in repositories], dtype=object)
    if len(repos) != n:
        raise ValueError(f"repositories has {len(repos)} entries for {n} embeddings; give one per row")
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must lie in 1..N-1 = 1..{n - 1}, got {k}")
    if centre is not None:
        centre = np.asarray(centre, dtype=np.float32).reshape(-1)
        if centre.shape != (d,):
            raise ValueError(f"centre must have shape ({d},) like an embedding, got {centre.shape}")
        x -= centre
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        bad = np.flatnonzero(norms == 0)
        where = " after centring" if centre is not None else ""
        raise ValueError(f"{len(bad)} embeddings have zero norm{where} "
                         f"(first rows {bad[:5].tolist()}); a zero vector has no cosine: drop them")
    x /= norms[:, None]
    x = np.ascontiguousarray(x)
    index = faiss.IndexFlatIP(d)
    index.add(x)
    sims, ids = index.search(x, k + 1)  # (N, k + 1) each
    is_self = ids == np.arange(n)[:, None]
    order = np.argsort(is_self, axis=1, kind="stable")[:, :k]  # non-self first, rank order kept
    ids = np.take_along_axis(ids, order, axis=1).astype(np.int64)
    sims = np.clip(np.take_along_axis(sims, order, axis=1), -1.0, 1.0)
    return KNNResult(ids=ids, similarities=sims, repositories=repos, centred=centre is not None)


def plot_similarity_distribution(result: KNNResult, path: str | os.PathLike, *, bins: int = 40,
                                 title: str = "Nearest-neighbour cosine") -> Path:
    """Plot the share of same- and cross-repository neighbours per cosine bin (PNG, line plot).

    Each curve is normalised to sum to 1 over the bins, so the two shapes compare despite
    different counts (the counts are in :meth:`KNNResult.similarity_quantiles`).

    Args:
        result: from :func:`knn`.
        path: the PNG file (written atomically, via :func:`harness.plots.line_plot`).
        bins: number of cosine bins.
        title: figure title.

    Returns:
        ``path``.
    """
    from harness.plots import line_plot

    edges, same, cross = result.similarity_histogram(bins)
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    series = {}
    for name, counts in ((f"same repository (n={same.sum()})", same),
                         (f"other repository (n={cross.sum()})", cross)):
        if counts.sum():
            series[name] = (counts / counts.sum()).tolist()
    kind = "centred cosine" if result.centred else "cosine"
    return line_plot(path, series, title=f"{title} (k={result.k})", x=centres,
                     xlabel=f"{kind} to a neighbour", ylabel="share of neighbours per bin")

