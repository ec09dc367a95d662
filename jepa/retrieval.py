"""Exact retrieval evaluation: the rank of each query's true body among every body, and baselines.

DESIGN.md "jepa: terms and semantics", **Evaluation**: the queries are the predicted embeddings of
the val/test functions, the corpus is the teacher body embedding of every function of every split,
and the score is the cosine after centring both with the training mean. For query ``i`` with true
body ``t_i`` and scores ``s_ij``

    rank_i = 1 + #{j : s_ij > s_it} + 0.5 · #{j ≠ t_i : s_ij = s_it}

(ties counted half, the true body itself never counted), over the whole corpus: no top-k cut-off,
no approximate index. With ``Σ_j sign(s_ij - s_it)`` = (#higher - #lower) this is
``rank_i = (N + 1 + Σ_j sign(s_ij - s_it)) / 2``, one pass over each score (:func:`exact_ranks`).

From the ranks: Rank@k (the fraction of queries with ``rank <= k``; a tie-half rank of 1.5 is not
a hit at k = 1), MRR (mean reciprocal rank, Voorhees, TREC-8 QA 1999), and the mean cosine of each
query to its true body; each with a 95 % bootstrap interval over queries through
:mod:`harness.stats` (:meth:`RetrievalResult.estimates`, :func:`retrieval_table`).

Baselines on the same corpus and queries:

* **random** (:func:`random_baseline`, :func:`expected_random_metrics`): a random scorer ranks the
  true body uniformly on ``1..N``: Rank@k = k / N, MRR = H_N / N.
* **teacher signature → body**: the teacher's own signature embedding as the prediction, through
  :func:`evaluate_embeddings` like a student.
* **BM25** (:func:`bm25_ranks`): signature text against body text (Robertson & Zaragoza, "The
  Probabilistic Relevance Framework: BM25 and Beyond", 2009), scored by ``bm25s`` (Lù, "BM25S:
  Orders of magnitude faster lexical search via eager sparse scoring", 2024) over code-aware tokens
  (:func:`code_tokens`).

Speed (``benchmarks/retrieval_eval.py``): the scores are float32 matrix products of a chunk of
queries against a tile of corpus rows, each counted in one pass, so exact ranks cost about what
FAISS's exact top-10 search (``IndexFlatIP``) of the same data costs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from harness.report import COSINE, NUMBER, PERCENT, Interval, Table
from harness.stats import Estimate, bootstrap_ci

__all__ = ["DEFAULT_TILE", "RetrievalResult", "bm25_ranks", "centre_and_normalise", "code_tokens",
           "evaluate_embeddings", "exact_ranks", "expected_random_metrics", "random_baseline",
           "rank_metrics", "retrieval_table"]

DEFAULT_TILE = 65_536
"""Corpus rows per matrix product by default: the whole corpus up to this size, so that a chunk of
queries costs a handful of large operations (small parallel operations wait for busy cores on a
loaded machine; ``benchmarks/retrieval_eval.py --sweep`` compares tile sizes). Pass ``tile=2048`` on an idle or single-threaded CPU."""
DEFAULT_KS = (1, 5, 10)
"""The cut-offs of Rank@k reported (DESIGN.md: Rank@1/5/10)."""


# ---------------------------------------------------------------------------------------------
# embeddings


def _check_matrix(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor [N, D], got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must hold floating-point values, got dtype {x.dtype}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} needs at least one row and one column, got shape {tuple(x.shape)}")


def _check_finite(name: str, x: Tensor) -> None:
    # a row sum is NaN or infinite when a value is (or when the row overflows): one read pass
    if not bool(torch.isfinite(x.sum(dim=1)).all()):
        bad = torch.nonzero(~torch.isfinite(x).all(dim=1)).flatten()
        raise ValueError(f"{name}: {len(bad)} of {len(x)} rows hold NaN or infinite values (first "
                         f"rows {bad[:5].tolist()}); drop or recompute them first")


def centre_and_normalise(x: Tensor, mean: Tensor | None) -> Tensor:
    """Rows centred with ``mean`` and scaled to unit L2 norm: ``(x - mean) / ||x - mean||``.

    The dot product of two such rows is their cosine after centring, the score of the evaluation
    (centring removes the common offset of anisotropic embeddings, see :mod:`jepa.geometry`).

    Args:
        x: ``[N, D]`` embeddings, any floating dtype and device.
        mean: ``[D]`` the training mean, or ``None`` to normalise without centring.

    Returns:
        ``[N, D]`` float32 on ``x``'s device, rows of norm 1.

    Raises:
        ValueError: ``x`` not 2-D, ``mean`` not of shape ``[D]``, NaN/infinite values, or a row
            equal to ``mean`` (its direction, hence its cosine, is undefined).
    """
    _check_matrix("x", x)
    x = x.detach().to(torch.float32)
    if mean is not None:
        if not isinstance(mean, Tensor) or tuple(mean.shape) != (x.shape[1],):
            found = tuple(mean.shape) if isinstance(mean, Tensor) else type(mean).__name__
            raise ValueError(f"mean must be a tensor of shape [D] = [{x.shape[1]}], got {found}")
        x = x - mean.detach().to(x.device, torch.float32)
    _check_finite("x", x)
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)  # [N, 1]
    zero = torch.nonzero(norms.flatten() == 0).flatten()
    if len(zero):
        raise ValueError(f"{len(zero)} of {len(x)} rows are zero after centring (first rows "
                         f"{zero[:5].tolist()}): their cosine is undefined; drop them first")
    return x / norms


# ---------------------------------------------------------------------------------------------
# exact ranks


@contextmanager
def _ieee_fp32(device: torch.device):
    """Full-precision float32 matrix products on CUDA (TF32's 10-bit mantissa would reorder
    near-ties, and another module may have enabled it); nothing to do on CPU."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision = before


def _check_targets(targets: Tensor, n_queries: int, n_corpus: int) -> Tensor:
    if not isinstance(targets, Tensor):
        targets = torch.as_tensor(targets)
    if targets.dim() != 1 or len(targets) != n_queries:
        raise ValueError(f"targets must be a 1-D tensor with one corpus row per query ([{n_queries}]), "
                         f"got shape {tuple(targets.shape)}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"targets must hold integer row indices, got dtype {targets.dtype}")
    targets = targets.detach().cpu().to(torch.long)
    if n_queries and (int(targets.min()) < 0 or int(targets.max()) >= n_corpus):
        bad = torch.nonzero((targets < 0) | (targets >= n_corpus)).flatten()
        raise ValueError(f"targets must index the corpus rows 0..{n_corpus - 1}: {len(bad)} do not "
                         f"(queries {bad[:5].tolist()}, values {targets[bad[:5]].tolist()})")
    return targets


@torch.no_grad()
def exact_ranks(queries: Tensor, corpus: Tensor, targets: Tensor, *, chunk: int = 512,
                device: str | torch.device = "cpu", tile: int | None = None) -> Tensor:
    """The exact rank of each query's true corpus row by dot product, ties counted half.

    ``rank_i = 1 + #{j : s_ij > s_it} + 0.5 · #{j ≠ t_i : s_ij = s_it}`` with ``s_ij`` the dot
    product of query ``i`` and corpus row ``j`` and ``t_i = targets[i]``: 1 is the best, ``N`` the
    worst, the true row itself is never counted. The inputs are expected centred and normalised
    (:func:`centre_and_normalise`), so that the dot product is the cosine.

    Every score is a float32 matrix product (IEEE float32 on CUDA too, never TF32) of a chunk of
    ``chunk`` queries against a tile of ``tile`` corpus rows, and every score of one query comes
    from a product of the same shape, the true row's included: a row identical to the true row
    scores exactly the same and counts as a tie. Queries are processed in the order of their
    targets, so that the tiles holding a chunk's targets (computed first, to read each query's
    true score) are few; each tile is counted in one pass (``(N + 1 + Σ sign(s_ij - s_it)) / 2``,
    :mod:`jepa.retrieval`).

    Args:
        queries: ``[Q, D]`` query embeddings (float32 is used).
        corpus: ``[N, D]`` corpus embeddings.
        targets: ``[Q]`` integer row of each query's true item in ``corpus``.
        chunk: queries per matrix product. Memory: ``chunk × tile`` float32 for the tile, plus
            ``chunk × tile`` per distinct tile holding a target of the chunk (at most
            ``chunk × N`` when a chunk's targets are spread over the whole corpus).
        device: where the products run (``"cpu"``, ``"cuda"``, ...); the inputs are copied there.
        tile: corpus rows per product (default :data:`DEFAULT_TILE`). The last tile is shifted
            back to end at row ``N`` (overlapping the one before; the overlap is counted once) so
            that every tile has the same shape.

    Returns:
        ``[Q]`` float64 ranks on CPU, in ``[1, N]``, multiples of 0.5.

    Raises:
        ValueError: inputs not 2-D or of different widths, ``targets`` not ``[Q]`` integers in
            ``[0, N)``, NaN/infinite values, ``chunk`` or ``tile`` < 1.

    Shapes:
        queries ``[Q, D]``, corpus ``[N, D]``, targets ``[Q]`` -> ``[Q]``.
    """
    _check_matrix("queries", queries)
    _check_matrix("corpus", corpus)
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"queries and corpus must have the same width D: queries "
                         f"{tuple(queries.shape)}, corpus {tuple(corpus.shape)}")
    if chunk < 1 or (tile is not None and tile < 1):
        raise ValueError(f"chunk and tile must be >= 1, got chunk={chunk}, tile={tile}")
    n_q, n = len(queries), len(corpus)
    targets = _check_targets(targets, n_q, n)
    device = torch.device(device)
    q = queries.detach().to(device, torch.float32)
    c = corpus.detach().to(device, torch.float32)
    _check_finite("queries", q)
    _check_finite("corpus", c)

    width = min(tile or DEFAULT_TILE, n)
    n_tiles = -(-n // width)
    starts = [k * width for k in range(n_tiles - 1)] + [n - width]  # every tile `width` rows
    skips = [k * width - starts[k] for k in range(n_tiles)]  # columns already counted (last tile)
    tiles = [c[s:s + width].t() for s in starts]  # [D, width] views

    order = torch.argsort(targets, stable=True)  # chunks of neighbouring targets: few target tiles
    q_sorted, t_sorted = q[order.to(device)], targets[order]
    tile_of = torch.clamp(t_sorted // width, max=n_tiles - 1)  # [Q] target's tile
    col_of = t_sorted - torch.tensor(starts)[tile_of]  # [Q] target's column in that tile
    acc = torch.zeros(n_q, dtype=torch.float64)  # Σ_j sign(s_ij - s_it), sorted order
    exact_sum = torch.float32 if width <= 2**24 else torch.float64
    buf = None  # [chunk, width] a tile without targets, allocated when the first one comes
    store = torch.empty(0, device=device)  # [n_target_tiles, chunk, width] tiles holding targets
    with _ieee_fp32(device):
        for lo in range(0, n_q, chunk):
            hi = min(lo + chunk, n_q)
            qc, rows = q_sorted[lo:hi], hi - lo  # [rows, D]
            held = torch.unique(tile_of[lo:hi]).tolist()
            slot = {k: i for i, k in enumerate(held)}
            if store.numel() < len(held) * rows * width:
                store = torch.empty(len(held) * rows * width, device=device)
            kept = store[:len(held) * rows * width].view(len(held), rows, width)
            for k in held:
                torch.mm(qc, tiles[k], out=kept[slot[k]])  # [rows, width]
            slots = torch.tensor([slot[k] for k in tile_of[lo:hi].tolist()], device=device)
            true = kept[slots, torch.arange(rows, device=device), col_of[lo:hi].to(device)]
            true = true[:, None]  # [rows, 1] each query's own score, from the same products
            total = torch.zeros(rows, dtype=torch.float64, device=device)
            for k in range(n_tiles):
                if k in slot:
                    scores = kept[slot[k]]
                else:
                    if buf is None:
                        buf = torch.empty(min(chunk, n_q), width, device=device)
                    scores = buf[:rows]
                    torch.mm(qc, tiles[k], out=scores)
                # a float32 sum of signs is an exact integer up to 2^24 columns
                total += scores[:, skips[k]:].sub_(true).sign_().sum(dim=1, dtype=exact_sum)
            acc[lo:hi] = total.cpu()
    ranks = torch.empty(n_q, dtype=torch.float64)
    ranks[order] = 0.5 * (n + 1 + acc)
    return ranks


# ---------------------------------------------------------------------------------------------
# metrics


def _as_ranks(ranks: Tensor | Sequence[float]) -> np.ndarray:
    r = (ranks.detach().cpu().double().numpy() if isinstance(ranks, Tensor)
         else np.asarray(ranks, dtype=np.float64)).reshape(-1)
    if not len(r):
        raise ValueError("ranks: got no queries; give at least one rank")
    if not np.isfinite(r).all() or (r < 1).any():
        raise ValueError(f"ranks must be finite and >= 1 (1 = the best), got min {np.nanmin(r)}, "
                         f"{int((~np.isfinite(r)).sum())} non-finite")
    return r


def rank_metrics(ranks: Tensor | Sequence[float], ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Rank@k, MRR, mean and median rank of exact ranks (:func:`exact_ranks`).

    Args:
        ranks: ``[Q]`` ranks, 1 = the best; tie-half ranks (1.5, ...) allowed.
        ks: the cut-offs ``k`` of Rank@k.

    Returns:
        ``{"rank@k": fraction of queries with rank <= k (1.5 is not a hit at k = 1), ...,
        "mrr": mean(1 / rank), "mean_rank", "median_rank"}``.

    Raises:
        ValueError: no ranks, or a rank that is not finite or below 1.
    """
    r = _as_ranks(ranks)
    out = {f"rank@{k}": float((r <= k).mean()) for k in ks}
    out["mrr"] = float((1.0 / r).mean())
    out["mean_rank"] = float(r.mean())
    out["median_rank"] = float(np.median(r))
    return out


@dataclass
class RetrievalResult:
    """The exact ranks of one method's queries, and their cosine to the true body.

    Attributes:
        ranks: ``[Q]`` float64 exact rank of each query's true body (1 = the best).
        cosine: ``[Q]`` float64 cosine of each query to its true body after centring; NaN where
            the method has no embedding (random, BM25).
        n_queries: ``Q``.
        n_corpus: ``N``, the corpus size the ranks are out of.
    """

    ranks: Tensor
    cosine: Tensor
    n_queries: int
    n_corpus: int

    def metrics(self, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
        """:func:`rank_metrics` of the ranks, plus ``"cosine"``: the mean cosine (NaN if none)."""
        out = rank_metrics(self.ranks, ks)
        cos = self.cosine.double()
        out["cosine"] = float(cos.mean()) if not bool(torch.isnan(cos).any()) else float("nan")
        return out

    def estimates(self, n_resamples: int = 2000, seed: int = 0,
                  ks: Sequence[int] = DEFAULT_KS) -> dict[str, Estimate]:
        """Rank@k, MRR and mean cosine with 95 % bootstrap intervals over queries.

        Each is a mean over queries (of ``rank <= k``, ``1 / rank``, the cosine) through
        :func:`harness.stats.bootstrap_ci` (percentile, ``n_resamples`` resamples, ``seed``).

        Returns:
            ``{"rank@1": Estimate, ..., "mrr": Estimate, "cosine": Estimate}``; the cosine is
            ``Estimate(nan)`` (shown ``n/a``) when the method has none.

        Raises:
            ValueError: invalid ranks, or cosines NaN for some queries but not all.
        """
        r = _as_ranks(self.ranks)
        out = {f"rank@{k}": bootstrap_ci(r <= k, n_resamples=n_resamples, seed=seed) for k in ks}
        out["mrr"] = bootstrap_ci(1.0 / r, n_resamples=n_resamples, seed=seed)
        cos = self.cosine.detach().cpu().double().numpy()
        out["cosine"] = (Estimate(float("nan")) if np.isnan(cos).all()
                         else bootstrap_ci(cos, n_resamples=n_resamples, seed=seed))
        return out


def evaluate_embeddings(predictions: Tensor, corpus: Tensor, targets: Tensor, *,
                        mean: Tensor | None, chunk: int = 512, device: str | torch.device = "cpu",
                        tile: int | None = None) -> RetrievalResult:
    """Exact retrieval of each prediction's true body: centre, normalise, rank, cosine.

    Both sides are centred with ``mean`` (the training mean of the body embeddings) and
    L2-normalised (:func:`centre_and_normalise`); the score is their dot product, the cosine.

    Args:
        predictions: ``[Q, D]`` predicted body embeddings (queries).
        corpus: ``[N, D]`` teacher body embeddings of every function of every split.
        targets: ``[Q]`` corpus row of each query's true body.
        mean: ``[D]`` the training mean, or ``None`` (no centring).
        chunk, device, tile: see :func:`exact_ranks`.

    Returns:
        A :class:`RetrievalResult` with the exact ranks and the cosine to the true body.

    Raises:
        ValueError: shapes that do not match, targets out of range, NaN values, zero rows.
    """
    _check_matrix("predictions", predictions)
    _check_matrix("corpus", corpus)
    if predictions.shape[1] != corpus.shape[1]:
        raise ValueError(f"predictions and corpus must have the same width D: predictions "
                         f"{tuple(predictions.shape)}, corpus {tuple(corpus.shape)}")
    targets = _check_targets(targets, len(predictions), len(corpus))
    device = torch.device(device)
    mean = None if mean is None else mean.detach().to(device)
    q = centre_and_normalise(predictions.detach().to(device), mean)
    c = centre_and_normalise(corpus.detach().to(device), mean)
    cosine = (q.double() * c[targets.to(device)].double()).sum(dim=1).cpu()  # [Q]
    ranks = exact_ranks(q, c, targets, chunk=chunk, device=device, tile=tile)
    return RetrievalResult(ranks, cosine, len(q), len(c))


# ---------------------------------------------------------------------------------------------
# baselines


def random_baseline(n_queries: int, n_corpus: int, *, seed: int = 0) -> RetrievalResult:
    """A random scorer: each true body's rank uniform on ``1..N`` (seeded), no cosine.

    Raises:
        ValueError: ``n_queries < 1`` or ``n_corpus < 1``.
    """
    if n_queries < 1 or n_corpus < 1:
        raise ValueError(f"random_baseline needs n_queries >= 1 and n_corpus >= 1, got "
                         f"{n_queries} and {n_corpus}")
    gen = torch.Generator().manual_seed(seed)
    ranks = torch.randint(1, n_corpus + 1, (n_queries,), generator=gen).double()
    return RetrievalResult(ranks, torch.full((n_queries,), float("nan"), dtype=torch.float64),
                           n_queries, n_corpus)


def expected_random_metrics(n_corpus: int, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """The expectation of :func:`rank_metrics` under a random scorer (rank uniform on ``1..N``).

    Rank@k = min(k, N) / N, MRR = H_N / N (``H_N = Σ_{r=1..N} 1/r``), mean rank (N + 1) / 2, median
    rank (N + 1) / 2.

    Raises:
        ValueError: ``n_corpus < 1``.
    """
    if n_corpus < 1:
        raise ValueError(f"n_corpus must be >= 1, got {n_corpus}")
    out = {f"rank@{k}": min(k, n_corpus) / n_corpus for k in ks}
    out["mrr"] = float(np.sum(1.0 / np.arange(1, n_corpus + 1, dtype=np.float64))) / n_corpus
    out["mean_rank"] = out["median_rank"] = (n_corpus + 1) / 2
    return out


_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits: splits on "_", ".", "(", spaces, ...
_CASE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # fooBar, HTTPResponse


def code_tokens(text: str) -> list[str]:
    """Code-aware lexical tokens: identifiers split on non-alphanumerics, snake_case and
    camelCase, lowercased; no stopwords (``def``, ``self``, ``return`` are left to BM25's IDF).

    ``code_tokens("def getHTTPResponse(max_len=10):") == ["def", "get", "http", "response",
    "max", "len", "10"]``. Digits stay with the letters before them (``utf8``, ``int32``).
    """
    return [part.lower() for word in _WORD.findall(text) for part in _CASE.split(word) if part]


def bm25_ranks(query_texts: Sequence[str], corpus_texts: Sequence[str], targets: Tensor, *,
               chunk: int = 256, k1: float = 1.5, b: float = 0.75) -> RetrievalResult:
    """Exact ranks of each query text's true document under BM25 (the lexical baseline).

    The corpus is indexed by ``bm25s`` (Lucene's BM25 variant, ``k1``, ``b``) over
    :func:`code_tokens`; every query is scored against every document (a query token counts once
    per occurrence, as ``bm25s.BM25.get_scores`` does, and tokens absent from the corpus score
    nothing) and ranked exactly like :func:`exact_ranks`, ties counted half: a query that shares
    no token with the corpus ties every document and gets rank ``(N + 1) / 2``.

    Args:
        query_texts: ``Q`` query texts (signatures).
        corpus_texts: ``N`` document texts (bodies of every split).
        targets: ``[Q]`` index of each query's true document in ``corpus_texts``.
        chunk: queries scored at a time (a dense ``[chunk, N]`` float32 score matrix).
        k1, b: BM25's term-frequency saturation and length normalisation.

    Returns:
        A :class:`RetrievalResult` with the ranks and NaN cosines.

    Raises:
        ValueError: no queries or documents, ``targets`` not ``[Q]`` integers in ``[0, N)``,
            ``chunk`` < 1.
    """
    import bm25s
    from scipy.sparse import csr_matrix

    if not len(query_texts) or not len(corpus_texts):
        raise ValueError(f"bm25_ranks needs queries and documents, got {len(query_texts)} queries "
                         f"and {len(corpus_texts)} documents")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    n_q, n = len(query_texts), len(corpus_texts)
    targets = _check_targets(targets, n_q, n).numpy()
    index = bm25s.BM25(k1=k1, b=b)
    index.index([code_tokens(t) for t in corpus_texts], show_progress=False)
    # bm25s keeps the BM25 weight of every (token, document) pair as CSC [N, V] arrays: read as
    # CSR [V, N], a query's scores are the sum of the rows of its tokens (its get_scores).
    weights = index.scores
    n_vocab = len(weights["indptr"]) - 1
    term_docs = csr_matrix((weights["data"], weights["indices"], weights["indptr"]),
                           shape=(n_vocab, n))  # [V, N]
    vocab = index.vocab_dict
    ranks = np.empty(n_q, dtype=np.float64)
    for lo in range(0, n_q, chunk):
        hi = min(lo + chunk, n_q)
        rows, cols = [], []
        for i, text in enumerate(query_texts[lo:hi]):
            ids = [vocab[tok] for tok in code_tokens(text) if vocab.get(tok, n_vocab) < n_vocab]
            rows += [i] * len(ids)
            cols += ids
        counts = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                            shape=(hi - lo, n_vocab))  # [rows, V] query token counts
        scores = (counts @ term_docs).toarray()  # [rows, N] float32
        true = scores[np.arange(hi - lo), targets[lo:hi]][:, None]
        ranks[lo:hi] = 0.5 * (n + 1 + np.sign(scores - true).sum(axis=1, dtype=np.float64))
    return RetrievalResult(torch.from_numpy(ranks), torch.full((n_q,), float("nan"),
                                                               dtype=torch.float64), n_q, n)


# ---------------------------------------------------------------------------------------------
# report


def retrieval_table(rows: Mapping[str, RetrievalResult], *, title: str, caption: str,
                    n_resamples: int = 2000, seed: int = 0) -> Table:
    """A :class:`harness.report.Table` of methods: Rank@1/5/10, MRR and cosine with 95 % CIs.

    Columns ``method, queries, Rank@1, Rank@5, Rank@10, MRR, cosine``; every metric cell an
    :class:`Estimate` from :meth:`RetrievalResult.estimates` (bootstrap over queries), Rank@k as
    :data:`PERCENT`, MRR as :data:`NUMBER`, cosine as :data:`COSINE` (``n/a`` where a method has
    none).

    Raises:
        ValueError: no rows.
    """
    if not rows:
        raise ValueError("retrieval_table needs at least one method, got none")
    table_rows = []
    for name, result in rows.items():
        est = result.estimates(n_resamples=n_resamples, seed=seed)
        table_rows.append([name, result.n_queries, est["rank@1"], est["rank@5"], est["rank@10"],
                           est["mrr"], est["cosine"]])
    ns = sorted({r.n_queries for r in rows.values()})
    interval = Interval.bootstrap(ns[0], "queries", n_resamples=n_resamples, seed=seed)
    if len(ns) > 1:
        interval = Interval("bootstrap", tuple(ns), "queries", interval.detail)
    return Table(title=title, columns=["method", "queries", "Rank@1", "Rank@5", "Rank@10", "MRR",
                                       "cosine"],
                 rows=table_rows, caption=caption,
                 formats={"Rank@1": PERCENT, "Rank@5": PERCENT, "Rank@10": PERCENT, "MRR": NUMBER,
                          "cosine": COSINE},
                 interval=interval)
